package manifest
import ("testing"; "fmt"; "os"; "os/exec"; "path/filepath"; "errors")
func TestScratch(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, f := range files {
		dir := t.TempDir()
		exec.Command("cp", "-r", "testdata/repo/.", dir).Run()
		data, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(dir, "tandem.yaml"), data, 0o644)
		_, err := Load(dir, LoadOptions{})
		fmt.Printf("=== %s\n", f)
		var ve *ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems { fmt.Printf("%#v\n", p) }
		} else { fmt.Println(err) }
	}
}
