package main

import (
	"errors"
	"fmt"
)

// enrollPIV generates and attests the card's slot key (placeholder until
// the PIV keystore lands).
func enrollPIV(uri string, record map[string]any, e env) error {
	return fmt.Errorf("piv: %w", errors.New("not built yet"))
}
