package fake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/fake"
)

// recorder is a testing.TB that records failures instead of failing the test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestSetFunctionsAreCalledAndCounted(t *testing.T) {
	f := fake.New(t)
	var _ fifteenth.API = f
	want := errors.New("boom")
	f.CreateAccountFunc = func(_ context.Context, req fifteenth.CreateAccountRequest) (*fifteenth.Account, error) {
		return &fifteenth.Account{ID: 7, Email: req.Email}, nil
	}
	f.GenerateLoginLinkFunc = func(context.Context, fifteenth.AccountID, fifteenth.LoginLinkRequest) (*fifteenth.LoginLink, error) {
		return nil, want
	}

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			a, err := f.CreateAccount(context.Background(), fifteenth.CreateAccountRequest{Email: "a@example.com"})
			if err != nil || a.ID != 7 || a.Email != "a@example.com" {
				t.Errorf("CreateAccount = %v, %v", a, err)
			}
			if _, err := f.GenerateLoginLink(context.Background(), 7, fifteenth.LoginLinkRequest{}); !errors.Is(err, want) {
				t.Errorf("GenerateLoginLink error = %v, want %v", err, want)
			}
		})
	}
	wg.Wait()
	if n := f.CreateAccountCalls(); n != 50 {
		t.Errorf("CreateAccountCalls = %d, want 50", n)
	}
	if n := f.GenerateLoginLinkCalls(); n != 50 {
		t.Errorf("GenerateLoginLinkCalls = %d, want 50", n)
	}
	if n := f.GetAccountCalls(); n != 0 {
		t.Errorf("GetAccountCalls = %d, want 0", n)
	}
}

func TestUnsetFunctionFailsTheTest(t *testing.T) {
	r := &recorder{TB: t}
	f := fake.New(r)
	for name, call := range map[string]func() error{
		"CreateAccount": func() error {
			_, err := f.CreateAccount(context.Background(), fifteenth.CreateAccountRequest{})
			return err
		},
		"GenerateLoginLink": func() error {
			_, err := f.GenerateLoginLink(context.Background(), 1, fifteenth.LoginLinkRequest{})
			return err
		},
		"GetAccount": func() error {
			_, err := f.GetAccount(context.Background(), 1)
			return err
		},
	} {
		r.errors = nil
		err := call()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("unset %s: error %v, want one naming the call", name, err)
		}
		if len(r.errors) != 1 || !strings.Contains(r.errors[0], "unexpected call to "+name) {
			t.Errorf("unset %s: test failures %q, want one naming the call", name, r.errors)
		}
	}
	if f.CreateAccountCalls() != 1 || f.GenerateLoginLinkCalls() != 1 || f.GetAccountCalls() != 1 {
		t.Errorf("unexpected calls are counted too: %d, %d, %d", f.CreateAccountCalls(), f.GenerateLoginLinkCalls(), f.GetAccountCalls())
	}
}
