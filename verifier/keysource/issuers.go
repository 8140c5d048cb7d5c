package keysource

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/frostmint/frostmint/verifier"
)

// Issuers makes one [Source] per config, as [New] does, and returns them as
// the issuers of a [verifier.Config], in the order of cfgs, with a run
// function that runs every source's [Source.Run] until its context ends and
// then returns that context's error.
//
// The first fetches of all sources are made concurrently, each bounded by
// ctx and [FetchTimeout]; as with New, an issuer that cannot be reached yet
// is no error.
//
// Issuers fails, with an errors.Join of errors wrapping [ErrConfig], if
// cfgs is empty, two configs name the same issuer, or any config is not
// usable ([Config.Validate]); and with the error of New if a JWKS file
// cannot be read. It returns no source when it fails.
func Issuers(ctx context.Context, cfgs []Config) ([]verifier.Issuer, func(context.Context) error, error) {
	var errs []error
	if len(cfgs) == 0 {
		errs = append(errs, fmt.Errorf("%w: no issuer", ErrConfig))
	}
	seen := make(map[string]bool, len(cfgs))
	sources := make([]*Source, len(cfgs))
	for i, cfg := range cfgs {
		if cfg.Issuer != "" && seen[cfg.Issuer] {
			errs = append(errs, fmt.Errorf("%w: config %d: duplicate issuer %s", ErrConfig, i, clip(cfg.Issuer)))
		}
		seen[cfg.Issuer] = true
		s, err := newSource(cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("config %d: %w", i, err))
		}
		sources[i] = s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}

	errs = make([]error, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		wg.Go(func() { errs[i] = s.init(ctx, cfgs[i].File) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}

	issuers := make([]verifier.Issuer, len(sources))
	for i, s := range sources {
		issuers[i] = verifier.Issuer{Issuer: s.Issuer(), Keys: s}
	}
	run := func(ctx context.Context) error {
		var wg sync.WaitGroup
		for _, s := range sources {
			wg.Go(func() { s.Run(ctx) })
		}
		wg.Wait()
		return ctx.Err()
	}
	return issuers, run, nil
}
