package config

import "testing"

// pause_less_pods is on by default, and a file turns it off.
func TestPauseLessPodsKey(t *testing.T) {
	if !Default().PauseLessPods {
		t.Fatal("pause_less_pods is off by default")
	}
	cfg, err := Load(writeConfig(t, "pause_less_pods = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PauseLessPods {
		t.Fatal("pause_less_pods = false not applied")
	}
}
