package integration_test

import (
	"fmt"
	"math"
	"time"
)

// logStart is the event time of the first log record: the records cross
// an hour boundary, so the output has two hour partitions.
var logStart = time.Date(2026, 1, 1, 5, 57, 0, 0, time.UTC)

var (
	logServices = []string{"checkout", "search", "auth", "catalog", "payments"}
	logLevels   = []string{"info", "info", "info", "warn", "error"}
)

// logRecord is one deterministic access-log record.
type logRecord struct {
	ID        int
	TS        int64
	Service   string
	Level     string
	Status    int
	LatencyMs float64
}

func makeLog(i int, step time.Duration) logRecord {
	return logRecord{
		ID:        i,
		TS:        logStart.Add(time.Duration(i) * step).UnixMilli(),
		Service:   logServices[i%len(logServices)],
		Level:     logLevels[(i/len(logServices))%len(logLevels)],
		Status:    []int{200, 200, 201, 404, 500}[(i/7)%5],
		LatencyMs: float64((i*7919)%100_000) / 1000,
	}
}

// JSON renders the record as a JSON log line of about 200 bytes.
func (r logRecord) JSON() []byte {
	return fmt.Appendf(nil, `{"ts":%d,"id":%d,"service":%q,"level":%q,"host":"web-%02d","path":"/api/v1/orders/%d","status":%d,"latency_ms":%.3f,"msg":"request served to client","trace":"%016x"}`,
		r.TS, r.ID, r.Service, r.Level, r.ID%16, r.ID%1000, r.Status, r.LatencyMs, uint64(r.ID)*0x9e3779b97f4a7c15)
}

// logWindow is the expected result of one 1-minute window of one key.
type logWindow struct {
	n        int64
	sum, max float64
}

type logKey struct {
	service, level string
	start          int64
}

// expectLogWindows computes the 1-minute tumbling count/avg/max of
// latency per service and level directly from the records.
func expectLogWindows(recs []logRecord) map[logKey]*logWindow {
	want := map[logKey]*logWindow{}
	for _, r := range recs {
		k := logKey{r.Service, r.Level, r.TS - r.TS%60_000}
		w := want[k]
		if w == nil {
			w = &logWindow{max: math.Inf(-1)}
			want[k] = w
		}
		w.n++
		w.sum += r.LatencyMs
		w.max = math.Max(w.max, r.LatencyMs)
	}
	return want
}

// sensorRecord is one deterministic sensor reading.
type sensorRecord struct {
	Sensor string
	Seq    int
	TS     int64
	Value  float64
}

// makeSensor gives reading i of sensors sensors; every sensor's readings
// have increasing Seq and event times.
func makeSensor(i, sensors int, start time.Time, step time.Duration) sensorRecord {
	return sensorRecord{
		Sensor: fmt.Sprintf("sensor-%02d", i%sensors),
		Seq:    i / sensors,
		TS:     start.Add(time.Duration(i) * step).UnixMilli(),
		Value:  float64((i*37)%1000) / 10,
	}
}

// JSON renders the reading as a JSON object.
func (r sensorRecord) JSON() []byte {
	return fmt.Appendf(nil, `{"ts":%d,"sensor":%q,"seq":%d,"value":%.1f,"unit":"celsius"}`, r.TS, r.Sensor, r.Seq, r.Value)
}

// sensorIndex is n of "sensor-nn".
func sensorIndex(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "sensor-%d", &n); err != nil {
		return -1
	}
	return n
}
