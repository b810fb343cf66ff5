package gitserver_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-gitops/tandem/e2e/gitserver"
)

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func TestScratchIncr2(t *testing.T) {
	s := gitserver.Start(t, "", "")
	s.CreateRepo(t, "big")
	src := t.TempDir()
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 20 {
		b := make([]byte, 20000)
		for j := range b { b[j] = byte('a' + r.IntN(26)) }
		os.WriteFile(filepath.Join(src, fmt.Sprint("f", i)), b, 0o644)
	}
	os.WriteFile(filepath.Join(src, "v"), []byte("1"), 0o644)
	one := s.PushDir(t, "big", "main", src, "one")
	os.WriteFile(filepath.Join(src, "v"), []byte("2"), 0o644)
	two := s.PushDir(t, "big", "main", src, "two")
	for _, caps := range []string{"side-band-64k ofs-delta agent=go-git/5.x shallow no-progress", "side-band-64k ofs-delta thin-pack agent=go-git/5.x shallow no-progress", "side-band-64k ofs-delta agent=go-git/5.x no-progress"} {
		body := pkt("want "+two+" "+caps+"\n") 
		if strings.Contains(caps, "shallow") {
			body += pkt("shallow "+one+"\n") + pkt("deepen 1\n")
		}
		body += "0000" + pkt("have "+one+"\n") + pkt("done\n")
		resp, err := http.Post(s.URL("big")+"/git-upload-pack", "application/x-git-upload-pack-request", strings.NewReader(body))
		if err != nil { t.Fatal(err) }
		n, _ := io.Copy(io.Discard, resp.Body)
		t.Logf("%s: %d bytes", caps, n)
	}
}
