package clusters

import (
	"context"
	"fmt"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestUsernameFollowsTheCredential: the user the API server authenticates
// a Cluster's requests as can change while the Cluster lives (serve keeps
// its connections for the life of the daemon): an exec credential plugin
// such as `aws eks get-token` assumes the role afresh for each token, and
// EKS names an access entry's user after the role session
// (arn:aws:sts::…:assumed-role/<role>/{{SessionName}}). The guard's writer
// must be the user tandem writes as now, else the guard a daemon wrote an
// hour ago refuses the daemon's own writes that drop a marker (review of
// issue 12). The clientset is a fake here: only the caching is under test
// (the fault, a credential whose user changes, is injected).
func TestUsernameFollowsTheCredential(t *testing.T) {
	cs := fake.NewClientset()
	n := 0
	cs.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		n++
		r := &authnv1.SelfSubjectReview{}
		r.Status.UserInfo.Username = fmt.Sprintf("arn:aws:sts::123456789012:assumed-role/tandem/session-%d", n)
		return true, r, nil
	})
	c := &Cluster{name: "blue", clientset: cs}
	ctx := context.Background()
	first, err := c.Username(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Username(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatalf("Username after the credential changed user: %q, the user of the first request (cached); want the user of now", second)
	}
	if want := "arn:aws:sts::123456789012:assumed-role/tandem/session-2"; second != want {
		t.Errorf("Username = %q, want %q", second, want)
	}
}
