package fifteenth_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/fifteenth/fifteenth-operator/internal/fifteenth"
	"github.com/fifteenth/fifteenth-operator/internal/fifteenth/sim"
)

// Two clients with two keys of one partner share an account's link budget through one
// injected limiter, and each key's creation limiter through another.
func TestSharedLimiters(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, sim.Config{}, fifteenth.Options{})
	ctx := context.Background()
	links := fifteenth.NewSlidingWindow(fifteenth.Rate{N: 2, Per: time.Hour}, e.clock.Now)
	creates := fifteenth.NewSlidingWindow(fifteenth.Rate{N: 1, Per: time.Minute}, e.clock.Now)
	mk := func(k string, creates *fifteenth.SlidingWindow) *fifteenth.Client {
		c, err := fifteenth.New(fifteenth.Options{BaseURL: e.srv.URL, Key: fifteenth.StaticKey(k), Now: e.clock.Now,
			LoginLinkRate:    fifteenth.Rate{N: 100, Per: time.Hour}, // ignored: the shared limiter rules
			LoginLinkLimiter: links, AccountCreateLimiter: creates})
		g.Expect(err).NotTo(HaveOccurred())
		return c
	}
	a, b := mk("15th_a", creates), mk("15th_b", nil)

	acc, err := a.CreateAccount(ctx, john())
	g.Expect(err).NotTo(HaveOccurred())
	_, err = a.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "x@example.com", FirstName: "X", LastName: "X"})
	var rl *fifteenth.RateLimitError
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "the injected creation limiter (1/1m) applies")
	_, err = b.CreateAccount(ctx, fifteenth.CreateAccountRequest{Email: "y@example.com", FirstName: "Y", LastName: "Y"})
	g.Expect(err).NotTo(HaveOccurred(), "another key has its own creation limiter")

	_, err = a.GenerateLoginLink(ctx, acc.ID, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = b.GenerateLoginLink(ctx, acc.ID, fifteenth.LoginLinkRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = a.GenerateLoginLink(ctx, acc.ID, fifteenth.LoginLinkRequest{})
	g.Expect(errors.As(err, &rl)).To(BeTrue(), "the account's budget (2/1h) is shared by both keys")
	g.Expect(rl.Scope).To(Equal(fifteenth.ScopeLoginLink))
}

func TestSlidingWindowTighten(t *testing.T) {
	g := NewWithT(t)
	l := fifteenth.NewSlidingWindow(fifteenth.Rate{N: 10, Per: time.Hour}, nil)
	g.Expect(l.Tighten(fifteenth.Rate{N: 100, Per: time.Hour})).To(BeFalse())
	g.Expect(l.Tighten(fifteenth.Rate{N: 10, Per: time.Hour})).To(BeFalse())
	g.Expect(l.Tighten(fifteenth.Rate{N: 0, Per: time.Hour})).To(BeFalse())
	g.Expect(l.Tighten(fifteenth.Rate{N: 1, Per: 6 * time.Minute})).To(BeTrue(), "same average, smaller burst")
	g.Expect(l.Rate()).To(Equal(fifteenth.Rate{N: 1, Per: 6 * time.Minute}))
	g.Expect(l.Tighten(fifteenth.Rate{N: 20, Per: time.Hour})).To(BeFalse(), "20/1h is looser than 1/6m")
	g.Expect(l.Tighten(fifteenth.Rate{N: 5, Per: time.Hour})).To(BeTrue(), "5/1h is stricter than 1/6m on average")
	// 1e7 × 1h overflows int64; the comparison must still be exact.
	g.Expect(l.Tighten(fifteenth.Rate{N: 10_000_000, Per: math.MaxInt64})).To(BeTrue(), "no overflow")
}
