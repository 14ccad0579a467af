package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Export and import over the server HTTP API (GET /v1/export, POST
// /v1/import), for backups and migrations; both need a server API key.

// Progress is told how far a transfer got: records (lines) and bytes.
type Progress func(records, bytes int64)

// ExportStats count what an export wrote, by kind.
type ExportStats struct {
	Records, Bytes int64
	ByKind         map[string]int64
}

// HTTPError is an error reply of the HTTP API.
type HTTPError struct {
	Status int
	Err    *protocol.Error
}

func (e *HTTPError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Err.Error()) }

// Unwrap returns the wire error.
func (e *HTTPError) Unwrap() error { return e.Err }

func httpError(resp *http.Response) error {
	var body protocol.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) != nil || body.Error == nil {
		return &HTTPError{Status: resp.StatusCode, Err: protocol.Errorf(protocol.CodeInternal, "%s", strings.TrimSpace(string(b)))}
	}
	return &HTTPError{Status: resp.StatusCode, Err: body.Error}
}

// Export writes the export of the node at base (http://host:port) to w:
// everything, or with channel one channel's records. It fails on an
// export cut short (the server ends a failed one with an error record and
// no clean end).
func Export(ctx context.Context, hc *http.Client, base, apiKey, channel string, w io.Writer, progress Progress) (ExportStats, error) {
	st := ExportStats{ByKind: map[string]int64{}}
	u := strings.TrimSuffix(base, "/") + protocol.PathExport
	if channel != "" {
		u += "?channel=" + url.QueryEscape(channel)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, httpError(resp)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: the rest comes in more reads.
			var all []byte
			all = append(all, line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				all = append(all, line...)
			}
			line = all
		}
		if len(line) > 0 {
			if kind := kindOf(line); kind == "error" {
				var e struct{ *protocol.Error }
				_ = json.Unmarshal(line, &e)
				if e.Error == nil {
					e.Error = protocol.Errorf(protocol.CodeInternal, "the export failed")
				}
				return st, fmt.Errorf("the export failed after %d records: %w", st.Records, e.Error)
			} else if line[len(line)-1] == '\n' {
				st.Records++
				st.ByKind[kind]++
			}
			if _, werr := w.Write(line); werr != nil {
				return st, werr
			}
			st.Bytes += int64(len(line))
			if progress != nil {
				progress(st.Records, st.Bytes)
			}
		}
		switch {
		case err == io.EOF && len(line) > 0 && line[len(line)-1] != '\n':
			return st, fmt.Errorf("the export was cut short after %d records", st.Records)
		case err == io.EOF:
			return st, nil
		case err != nil:
			return st, fmt.Errorf("the export was cut short after %d records: %w", st.Records, err)
		}
	}
}

// kindOf reads a record's kind from its first key, as the server writes
// it ("" when it is not there).
func kindOf(line []byte) string {
	k, _ := protocol.LeadingString(line, "kind")
	return k
}

// Import sends the NDJSON records r holds to the node at base and
// returns its answer (the lines it refused are in Errors). With dryRun
// the node checks every line and writes nothing.
func Import(ctx context.Context, hc *http.Client, base, apiKey string, r io.Reader, dryRun bool, progress Progress) (*protocol.ImportResult, error) {
	u := strings.TrimSuffix(base, "/") + protocol.PathImport
	if dryRun {
		u += "?dry_run=true"
	}
	body := &countingReader{r: r, progress: progress}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", protocol.ContentTypeNDJSON)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, httpError(resp)
	}
	var res protocol.ImportResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&res); err != nil {
		return nil, fmt.Errorf("import reply: %w", err)
	}
	return &res, nil
}

// countingReader counts the lines and bytes read through it.
type countingReader struct {
	r        io.Reader
	lines, n int64
	progress Progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.lines += int64(bytes.Count(p[:n], []byte("\n")))
		if c.progress != nil {
			c.progress(c.lines, c.n)
		}
	}
	return n, err
}
