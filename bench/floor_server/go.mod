module floor_server

go 1.24
