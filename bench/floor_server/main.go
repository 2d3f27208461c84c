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
//	floor_server -put ...     also announce put, for a cold build: with DIR,
//	                          store each output and its index entry in DIR
//	                          in Go's format (open, write, truncate, close:
//	                          the work of the Python server's put); with
//	                          -table, read the body and throw it away
//	                          (the protocol floor of a put)
//
// It knows get, close and (with -put) put; anything else is an Err.
// Not part of idemwrite: a measuring instrument.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
)

var (
	getMiddle   = []byte(`,"Command":"get","ActionID":"`)
	closeSuffix = []byte(`,"Command":"close"}`)
	putMiddle   = []byte(`,"Command":"put"`)
	idPrefix    = []byte(`{"ID":`)
)

// store keeps one put (action ID, output ID, body) and returns the
// output's absolute path, or an error message.
type store func(actionID, outputID, body []byte) (string, string)

// answer is the part of a hit response after its ID, or "" for a miss.
type answer func(actionID []byte) string

func main() {
	var look answer
	var keep store // nil: put is not announced
	args := os.Args[1:]
	put := len(args) > 0 && args[0] == "-put"
	if put {
		args = args[1:]
	}
	switch {
	case len(args) == 2 && args[0] == "-table":
		look = tableAnswer(args[1])
		if put {
			keep = nullStore
		}
	case len(args) == 1:
		look = diskAnswer(args[0])
		if put {
			keep = diskStore(args[0])
		}
	default:
		os.Stderr.WriteString("usage: floor_server [-put] DIR | floor_server [-put] -table FILE\n")
		os.Exit(2)
	}
	serve(look, keep)
}

func serve(look answer, keep store) {
	br := bufio.NewReaderSize(os.Stdin, 1<<16)
	bw := bufio.NewWriterSize(os.Stdout, 1<<16)
	if keep != nil {
		bw.WriteString(`{"ID":0,"KnownCommands":["get","put","close"]}` + "\n")
	} else {
		bw.WriteString(`{"ID":0,"KnownCommands":["get","close"]}` + "\n")
	}
	bw.Flush()
	for {
		line, err := br.ReadSlice('\n')
		if err != nil { // end of input (a request line is far below 64 KiB)
			bw.Flush()
			return
		}
		line = bytes.TrimSpace(line)
		if keep != nil && bytes.Contains(line, putMiddle) {
			if !putRequest(br, bw, line, keep) {
				bw.Flush()
				return
			}
		} else if len(line) > 0 && !respond(bw, line, look) {
			bw.Flush()
			return
		}
		if br.Buffered() == 0 { // flush only before we would block
			bw.Flush()
		}
	}
}

// putRequest reads a put (and its body line, if BodySize > 0), stores it
// and answers; false if the input ended or was malformed.
func putRequest(br *bufio.Reader, bw *bufio.Writer, line []byte, keep store) bool {
	var req struct {
		ID       int64
		ActionID []byte
		OutputID []byte
		BodySize int64
	}
	if err := json.Unmarshal(line, &req); err != nil {
		bw.WriteString(`{"ID":0,"Err":"floor_server: bad put"}` + "\n")
		return false
	}
	var body []byte
	if req.BodySize > 0 {
		var raw []byte
		for len(bytes.TrimSpace(raw)) == 0 { // the go command ends a request with an empty line
			var err error
			if raw, err = br.ReadBytes('\n'); err != nil {
				return false
			}
		}
		if err := json.Unmarshal(raw, &body); err != nil || int64(len(body)) != req.BodySize {
			fmt.Fprintf(bw, `{"ID":%d,"Err":"floor_server: bad body"}`+"\n", req.ID)
			return true
		}
	}
	path, msg := keep(req.ActionID, req.OutputID, body)
	if msg != "" {
		fmt.Fprintf(bw, `{"ID":%d,"Err":%q}`+"\n", req.ID, "floor_server: "+msg)
		return true
	}
	fmt.Fprintf(bw, `{"ID":%d,"DiskPath":%q}`+"\n", req.ID, path)
	return true
}

// nullStore keeps nothing: the floor of a put is reading its request.
func nullStore(_, _, _ []byte) (string, string) { return "/dev/null", "" }

// diskStore writes DIR/xx/<output>-d and DIR/xx/<action>-a as Go's
// DiskCache lays them out, each with open, write, truncate, close.
func diskStore(dir string) store {
	for i := 0; i < 256; i++ {
		os.MkdirAll(fmt.Sprintf("%s/%02x", dir, i), 0o777)
	}
	return func(aid, oid, body []byte) (string, string) {
		if len(aid) != 32 || len(oid) != 32 {
			return "", "bad IDs"
		}
		ah, oh := hex.EncodeToString(aid), hex.EncodeToString(oid)
		out := dir + "/" + oh[:2] + "/" + oh + "-d"
		if err := writeThenTruncate(out, body); err != nil {
			return "", err.Error()
		}
		entry := fmt.Sprintf("v1 %s %s %20d %20d\n", ah, oh, len(body), time.Now().UnixNano())
		if err := writeThenTruncate(dir+"/"+ah[:2]+"/"+ah+"-a", []byte(entry)); err != nil {
			return "", err.Error()
		}
		return out, ""
	}
}

func writeThenTruncate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err1 := f.Close(); err == nil {
		err = err1
	}
	return err
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
