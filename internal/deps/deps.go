// Package deps pins modules that packages under construction import, so
// go mod tidy keeps them. It is removed once they are imported for real.
package deps

import (
	_ "github.com/DataDog/sketches-go/ddsketch"
	_ "github.com/axiomhq/hyperloglog"
	_ "github.com/cespare/xxhash/v2"
	_ "github.com/expr-lang/expr"
	_ "github.com/parquet-go/parquet-go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/stretchr/testify/require"
	_ "github.com/valyala/fastjson"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
)
