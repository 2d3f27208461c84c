// Command floor_server is the cheapest GOCACHEPROG server we can write: a
// compiled baseline for bench_gobuild, which measures how much of the
// Python server's cost is the protocol itself (one pipe round trip per
// cache lookup, JSON on the go command's side) rather than Python.
//
//	floor_server DIR          answer each get by reading DIR's index file
//	                          (the same work as the Python server's get)
//	floor_server -table FILE  answer each get from a table loaded at start:
//	                          no work per request at all (the protocol floor)
//
// It knows only the requests of a warm build: get and close (it announces
// no put, so the go command never sends one); anything else is an Err.
// Not part of idemwrite: a measuring instrument.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"strconv"
	"time"
)

var (
	getMiddle   = []byte(`,"Command":"get","ActionID":"`)
	closeSuffix = []byte(`,"Command":"close"}`)
	idPrefix    = []byte(`{"ID":`)
)

// answer is the part of a hit response after its ID, or "" for a miss.
type answer func(actionID []byte) string

func main() {
	var look answer
	switch {
	case len(os.Args) == 3 && os.Args[1] == "-table":
		look = tableAnswer(os.Args[2])
	case len(os.Args) == 2:
		look = diskAnswer(os.Args[1])
	default:
		os.Stderr.WriteString("usage: floor_server DIR | floor_server -table FILE\n")
		os.Exit(2)
	}
	serve(look)
}

func serve(look answer) {
	br := bufio.NewReaderSize(os.Stdin, 1<<16)
	bw := bufio.NewWriterSize(os.Stdout, 1<<16)
	bw.WriteString(`{"ID":0,"KnownCommands":["get","close"]}` + "\n")
	bw.Flush()
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			bw.Flush()
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 && !respond(bw, line, look) {
			bw.Flush()
			return
		}
		if br.Buffered() == 0 { // flush only before we would block
			bw.Flush()
		}
	}
}

// respond answers one request line; false after close.
func respond(bw *bufio.Writer, line []byte, look answer) bool {
	if !bytes.HasPrefix(line, idPrefix) {
		bw.WriteString(`{"ID":0,"Err":"floor_server: unexpected request"}` + "\n")
		return true
	}
	if bytes.HasSuffix(line, closeSuffix) {
		bw.Write(line[:len(line)-len(closeSuffix)])
		bw.WriteString("}\n")
		return false
	}
	i := bytes.Index(line, getMiddle)
	if i < 0 || !bytes.HasSuffix(line, []byte(`"}`)) {
		bw.WriteString(`{"ID":0,"Err":"floor_server: only get and close"}` + "\n")
		return true
	}
	aid, err := base64.StdEncoding.DecodeString(string(line[i+len(getMiddle) : len(line)-2]))
	tail := ""
	if err == nil && len(aid) == 32 {
		tail = look(aid)
	}
	bw.Write(line[:i])
	if tail == "" {
		bw.WriteString(`,"Miss":true}` + "\n")
	} else {
		bw.WriteString(tail)
	}
	return true
}

// diskAnswer reads DIR/xx/<hex>-a as Go's DiskCache does (175 bytes:
// "v1 <action> <output> <size> <time>\n") and points at the output file.
func diskAnswer(dir string) answer {
	buf := make([]byte, 256)
	return func(aid []byte) string {
		h := hex.EncodeToString(aid)
		f, err := os.Open(dir + "/" + h[:2] + "/" + h + "-a")
		if err != nil {
			return ""
		}
		n, _ := f.Read(buf)
		f.Close()
		if n != 175 || string(buf[3:67]) != h {
			return ""
		}
		// As Go's GetFile (and the Python server): the output must exist
		// with the recorded size.
		oh := string(buf[68:132])
		st, err := os.Stat(dir + "/" + oh[:2] + "/" + oh + "-d")
		size, err1 := strconv.ParseInt(string(bytes.TrimSpace(buf[133:153])), 10, 64)
		if err != nil || err1 != nil || st.Size() != size {
			return ""
		}
		return hitTail(dir, buf[:n])
	}
}

func hitTail(dir string, entry []byte) string {
	oh := string(entry[68:132])
	out, err := hex.DecodeString(oh)
	size, err1 := strconv.ParseInt(string(bytes.TrimSpace(entry[133:153])), 10, 64)
	ns, err2 := strconv.ParseInt(string(bytes.TrimSpace(entry[154:174])), 10, 64)
	if err != nil || err1 != nil || err2 != nil {
		return ""
	}
	t := time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
	return `,"OutputID":"` + base64.StdEncoding.EncodeToString(out) + `","Size":` + strconv.FormatInt(size, 10) +
		`,"Time":"` + t + `","DiskPath":"` + dir + "/" + oh[:2] + "/" + oh + "-d\"}\n"
}

// tableAnswer loads "<base64 action ID> <response tail>" lines.
func tableAnswer(file string) answer {
	data, err := os.ReadFile(file)
	if err != nil {
		os.Stderr.WriteString("floor_server: " + err.Error() + "\n")
		os.Exit(1)
	}
	table := map[string]string{}
	for _, l := range bytes.Split(data, []byte("\n")) {
		if k, v, ok := bytes.Cut(l, []byte(" ")); ok {
			table[string(k)] = string(v) + "\n"
		}
	}
	return func(aid []byte) string { return table[base64.StdEncoding.EncodeToString(aid)] }
}
