// Package modroot finds the module's root directory from a test's working
// directory (a package directory under go test), where the project's
// scripts and its tool cache (.cache) live.
package modroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Dir returns the nearest directory holding go.mod at or above the working
// directory.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
