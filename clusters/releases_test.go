package clusters

import (
	"errors"
	"testing"

	"helm.sh/helm/v3/pkg/release"
)

func rev(version int, status release.Status) *release.Release {
	return &release.Release{Name: "web", Version: version, Info: &release.Info{Status: status}}
}

func TestUpgradeBase(t *testing.T) {
	tests := []struct {
		name    string
		history []*release.Release
		want    int // revision; 0 for none
	}{
		{name: "empty", want: 0},
		{name: "latest deployed", history: []*release.Release{rev(1, release.StatusSuperseded), rev(2, release.StatusDeployed)}, want: 2},
		{name: "failed upgrade diffs against last deployed", history: []*release.Release{rev(2, release.StatusFailed), rev(1, release.StatusDeployed)}, want: 1},
		{name: "failed install alone", history: []*release.Release{rev(1, release.StatusFailed)}, want: 1},
		{name: "pending latest has no base", history: []*release.Release{rev(1, release.StatusDeployed), rev(2, release.StatusPendingUpgrade)}, want: 0},
		{name: "uninstalled latest has no base", history: []*release.Release{rev(1, release.StatusUninstalled)}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := 0
			if b := upgradeBase(tt.history); b != nil {
				got = b.Version
			}
			if got != tt.want {
				t.Errorf("upgradeBase() = revision %d, want %d", got, tt.want)
			}
		})
	}
}

func TestExplainImmutable(t *testing.T) {
	helmErr := errors.New(`cannot patch "web" with kind Deployment: Deployment.apps "web" is invalid: spec.selector: Invalid value: {}: field is immutable`)
	got := explainImmutable(helmErr)
	if !errors.Is(got, ErrImmutable) || !errors.Is(got, helmErr) {
		t.Errorf("explainImmutable(immutable) = %v: want both ErrImmutable and the cause", got)
	}
	other := errors.New("connection refused")
	if got := explainImmutable(other); got != other {
		t.Errorf("explainImmutable(other) = %v, want it unchanged", got)
	}
}
