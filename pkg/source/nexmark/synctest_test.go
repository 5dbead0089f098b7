package nexmark

import (
	"testing"
	"testing/synctest"
)

func synctestRun(t *testing.T, f func(*testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}
