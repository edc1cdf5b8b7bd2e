// Package fake provides a function-field fake of fifteenth.API for unit tests, in the style of
// cert-manager's pkg/acme/client/fake.go: each method calls the function field of the same
// name. A test sets the functions of the calls it expects; a call whose function is unset
// fails the test and returns an error. The fake counts the calls of each method, so that a
// test can also assert that a method was never called.
package fake

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
)

// API implements fifteenth.API with function fields. Set the fields before the fake is shared
// with other goroutines; the methods and the call counts are then safe for concurrent use.
type API struct {
	CreateAccountFunc     func(ctx context.Context, req fifteenth.CreateAccountRequest) (*fifteenth.Account, error)
	GenerateLoginLinkFunc func(ctx context.Context, id fifteenth.AccountID, req fifteenth.LoginLinkRequest) (*fifteenth.LoginLink, error)
	GetAccountFunc        func(ctx context.Context, id fifteenth.AccountID) (*fifteenth.Account, error)

	t                                testing.TB
	createCalls, linkCalls, getCalls atomic.Int64
}

var _ fifteenth.API = (*API)(nil)

// New returns a fake with no function set, reporting unexpected calls to t.
func New(t testing.TB) *API { return &API{t: t} }

// CreateAccount calls CreateAccountFunc.
func (f *API) CreateAccount(ctx context.Context, req fifteenth.CreateAccountRequest) (*fifteenth.Account, error) {
	f.createCalls.Add(1)
	if f.CreateAccountFunc == nil {
		return nil, f.unexpected("CreateAccount")
	}
	return f.CreateAccountFunc(ctx, req)
}

// GenerateLoginLink calls GenerateLoginLinkFunc.
func (f *API) GenerateLoginLink(ctx context.Context, id fifteenth.AccountID, req fifteenth.LoginLinkRequest) (*fifteenth.LoginLink, error) {
	f.linkCalls.Add(1)
	if f.GenerateLoginLinkFunc == nil {
		return nil, f.unexpected("GenerateLoginLink")
	}
	return f.GenerateLoginLinkFunc(ctx, id, req)
}

// GetAccount calls GetAccountFunc.
func (f *API) GetAccount(ctx context.Context, id fifteenth.AccountID) (*fifteenth.Account, error) {
	f.getCalls.Add(1)
	if f.GetAccountFunc == nil {
		return nil, f.unexpected("GetAccount")
	}
	return f.GetAccountFunc(ctx, id)
}

// CreateAccountCalls returns how many times CreateAccount was called, set or not.
func (f *API) CreateAccountCalls() int { return int(f.createCalls.Load()) }

// GenerateLoginLinkCalls returns how many times GenerateLoginLink was called, set or not.
func (f *API) GenerateLoginLinkCalls() int { return int(f.linkCalls.Load()) }

// GetAccountCalls returns how many times GetAccount was called, set or not.
func (f *API) GetAccountCalls() int { return int(f.getCalls.Load()) }

// unexpected fails the test with t.Errorf, not t.Fatalf: controllers call the API from their
// own goroutines, where FailNow must not be called. The message names only the method, never
// an argument (requests may hold emails; answers hold login links).
func (f *API) unexpected(method string) error {
	err := fmt.Errorf("fake.API: unexpected call to %s (%sFunc is not set)", method, method)
	f.t.Helper()
	f.t.Errorf("%v", err)
	return err
}
