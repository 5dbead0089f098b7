package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/streamd/streamd/internal/fielderr"
)

// DialTimeout bounds connecting to one broker, TLS and SASL included.
const DialTimeout = 10 * time.Second

// SASL mechanism names accepted in SASLConfig.Mechanism.
const (
	MechanismPlain       = "plain"
	MechanismSCRAMSHA256 = "scram-sha-256"
	MechanismSCRAMSHA512 = "scram-sha-512"
)

// TLSConfig enables TLS to the brokers. TLS is on only with Enabled: any
// other setting without it is an error, never a silent plaintext
// connection (a caFile or insecureSkipVerify left without enabled once
// meant plaintext to a broker the author believed was TLS).
type TLSConfig struct {
	// Enabled turns TLS on with the system roots when no CAFile is given.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the broker certificates.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are the PEM client certificate and key for mTLS.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// InsecureSkipVerify disables broker certificate verification; for
	// tests only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
	// ServerName overrides the name checked in the broker certificate.
	ServerName string `yaml:"serverName"`
}

// On reports whether TLS is used.
func (c TLSConfig) On() bool { return c.Enabled }

// Validate checks the settings that do not need the files; prefix is the
// yaml path of the block ("tls"). Every problem is reported, each as a
// *fielderr.Error naming its setting.
func (c TLSConfig) Validate(prefix string) error {
	var errs []error
	if !c.Enabled {
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"caFile", c.CAFile != ""}, {"certFile", c.CertFile != ""}, {"keyFile", c.KeyFile != ""},
			{"insecureSkipVerify", c.InsecureSkipVerify}, {"serverName", c.ServerName != ""},
		} {
			if s.set {
				errs = append(errs, fielderr.Errorf(s.name, "is set but enabled is not true: set enabled: true to use TLS, or remove the setting (TLS is never turned on implicitly, nor a setting ignored)"))
			}
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fielderr.Errorf("certFile", "certFile and keyFile must be set together"))
	}
	return fielderr.Prefix(prefix, errors.Join(errs...))
}

// Build loads the files and returns the client TLS configuration, or nil
// when TLS is off.
func (c TLSConfig) Build() (*tls.Config, error) {
	if err := c.Validate("tls"); err != nil {
		return nil, fmt.Errorf("build tls config: %w", err)
	}
	if !c.On() {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in for tests
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("build tls config: read tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("build tls config: tls.caFile %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("build tls config: load tls.certFile/tls.keyFile: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// SASLConfig authenticates to the brokers. The password is never logged:
// String and the zap encoders print it redacted.
type SASLConfig struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	// AllowPlaintext accepts sending the credentials without TLS, which
	// gives them to anyone on the network path (PLAIN sends the password
	// itself). Without it, SASL needs tls.enabled. A warning is logged
	// whenever it is used.
	AllowPlaintext bool `yaml:"allowPlaintext"`
}

// String renders the settings with the password redacted, so a config
// printed by mistake does not leak it.
func (c SASLConfig) String() string {
	if c.Mechanism == "" {
		return "sasl(off)"
	}
	return fmt.Sprintf("sasl(%s user=%s password=<redacted>)", c.Mechanism, c.Username)
}

// GoString redacts the password in %#v too.
func (c SASLConfig) GoString() string { return c.String() }

// Mechanisms lists the accepted SASL mechanisms.
var Mechanisms = []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512}

// Validate checks the mechanism and credentials; prefix is the yaml path of
// the block ("sasl"). Every problem is reported as a *fielderr.Error.
func (c SASLConfig) Validate(prefix string) error {
	var errs []error
	switch strings.ToLower(c.Mechanism) {
	case "":
		if c.Username != "" || c.Password != "" || c.AllowPlaintext {
			errs = append(errs, fielderr.Errorf("mechanism", "required when username, password or allowPlaintext is set (want %s)", strings.Join(Mechanisms, ", ")))
		}
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.Username == "" {
			errs = append(errs, fielderr.Errorf("username", "required with mechanism %s", c.Mechanism))
		}
	default:
		errs = append(errs, fielderr.Errorf("mechanism", "%s", fielderr.Unknown("mechanism", c.Mechanism, Mechanisms)))
	}
	return fielderr.Prefix(prefix, errors.Join(errs...))
}

// Plaintext reports whether SASL credentials would cross the network
// without TLS.
func Plaintext(t TLSConfig, s SASLConfig) bool { return s.Mechanism != "" && !t.On() }

// ValidateSecurity checks a connection's tls and sasl blocks together,
// with their paths under prefix ("" or "kafka"): each on its own, and that
// SASL without TLS is explicitly allowed (sasl.allowPlaintext), so
// credentials are never sent in plaintext by accident.
func ValidateSecurity(prefix string, t TLSConfig, s SASLConfig) error {
	join := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	errs := []error{t.Validate(join("tls")), s.Validate(join("sasl"))}
	switch {
	case Plaintext(t, s) && !s.AllowPlaintext && slices.Contains(Mechanisms, strings.ToLower(s.Mechanism)):
		errs = append(errs, fielderr.Errorf(join("sasl.mechanism"), "%s without TLS sends the credentials in plaintext: set tls.enabled: true, or sasl.allowPlaintext: true to accept that", s.Mechanism))
	case s.AllowPlaintext && t.On():
		errs = append(errs, fielderr.Errorf(join("sasl.allowPlaintext"), "only applies without TLS; remove it"))
	}
	return errors.Join(errs...)
}

// Build returns the kafka-go mechanism, or nil when SASL is off.
func (c SASLConfig) Build() (sasl.Mechanism, error) {
	if err := c.Validate("sasl"); err != nil {
		return nil, fmt.Errorf("build sasl mechanism: %w", err)
	}
	if c.Mechanism == "" {
		return nil, nil
	}
	switch strings.ToLower(c.Mechanism) {
	case MechanismPlain:
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if strings.EqualFold(c.Mechanism, MechanismSCRAMSHA512) {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, c.Password)
		if err != nil {
			return nil, fmt.Errorf("build sasl mechanism: %w", err)
		}
		return m, nil
	}
	return nil, nil
}

// DefaultClientID is the client id of a Client that names none.
const DefaultClientID = "streamd"

// Client is the connection block every Kafka connector shares (the source,
// the sink), written inline in their YAML blocks.
type Client struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// ClientID names this client in broker logs and quotas; default streamd.
	ClientID string     `yaml:"clientID"`
	TLS      TLSConfig  `yaml:"tls"`
	SASL     SASLConfig `yaml:"sasl"`
}

// WithDefaults fills the zero settings that have a default.
func (c Client) WithDefaults() Client {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	return c
}

// Validate reports every invalid setting, each as a *fielderr.Error naming
// its yaml path ("brokers[0]", "sasl.mechanism"): at least one broker,
// each host:port, and the security settings as ValidateSecurity checks
// them. The two come apart so that a block can list its problems in the
// order its settings are written (brokers first, tls and sasl last).
func (c Client) Validate() (brokers, security error) {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, fielderr.Errorf("brokers", "at least one broker is required"))
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, fielderr.Errorf(fmt.Sprintf("brokers[%d]", i), "%q must be host:port", b))
		}
	}
	return errors.Join(errs...), ValidateSecurity("", c.TLS, c.SASL)
}

// Plaintext reports whether SASL credentials would cross the network
// without TLS.
func (c Client) Plaintext() bool { return Plaintext(c.TLS, c.SASL) }

// Connect builds the connection settings; see New.
func (c Client) Connect() (*Conn, error) {
	c = c.WithDefaults()
	return New(c.Brokers, c.ClientID, c.TLS, c.SASL)
}

// Conn is the built connection settings of one source or sink.
type Conn struct {
	Brokers  []string
	ClientID string
	TLS      *tls.Config
	SASL     sasl.Mechanism
}

// New builds the connection settings from configuration. It refuses what
// ValidateSecurity refuses, so no caller can connect in plaintext by mistake.
func New(brokers []string, clientID string, t TLSConfig, s SASLConfig) (*Conn, error) {
	if err := ValidateSecurity("", t, s); err != nil {
		return nil, fmt.Errorf("build kafka connection: %w", err)
	}
	tc, err := t.Build()
	if err != nil {
		return nil, err
	}
	m, err := s.Build()
	if err != nil {
		return nil, err
	}
	return &Conn{Brokers: slices.Clone(brokers), ClientID: clientID, TLS: tc, SASL: m}, nil
}

// Dialer returns a kafka-go dialer for readers and consumer groups.
func (c *Conn) Dialer() *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      c.ClientID,
		Timeout:       DialTimeout,
		DualStack:     true,
		TLS:           c.TLS,
		SASLMechanism: c.SASL,
	}
}

// Transport returns a kafka-go transport for writers and admin requests.
// Its owner calls CloseIdleConnections when done with it.
func (c *Conn) Transport() *kafka.Transport {
	return &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: DialTimeout}).DialContext,
		DialTimeout: DialTimeout,
		ClientID:    c.ClientID,
		TLS:         c.TLS,
		SASL:        c.SASL,
	}
}

// Check connects to every broker (TLS and SASL included), then asks one of
// them whether every topic exists. It returns one error naming what failed
// and what to fix: unreachable brokers, failed logins and missing topics are
// listed together so a single run shows every problem.
func (c *Conn) Check(ctx context.Context, topics []string) error {
	if len(c.Brokers) == 0 {
		return errors.New("check kafka: no brokers configured: set brokers")
	}
	d := c.Dialer()
	var problems []string
	var reachable string
	for _, b := range c.Brokers {
		if err := ping(ctx, d, b); err != nil {
			problems = append(problems, fmt.Sprintf("broker %s: %s (%s)", b, err, hint(err)))
			continue
		}
		if reachable == "" {
			reachable = b
		}
	}
	if reachable == "" {
		return fmt.Errorf("check kafka: no broker reachable: %s", strings.Join(problems, "; "))
	}
	missing, err := c.missingTopics(ctx, reachable, topics)
	if err != nil {
		problems = append(problems, fmt.Sprintf("metadata from broker %s: %s", reachable, err))
	}
	for _, t := range missing {
		problems = append(problems, fmt.Sprintf("topic %q does not exist on brokers %s (create it or fix the topic name)", t, strings.Join(c.Brokers, ",")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("check kafka: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ping connects to one broker and exchanges one request, so TLS client
// certificate and protocol mismatches that surface after the handshake are
// caught too.
func ping(ctx context.Context, d *kafka.Dialer, broker string) error {
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DialTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	_, err = conn.ApiVersions()
	return err
}

func (c *Conn) missingTopics(ctx context.Context, broker string, topics []string) ([]string, error) {
	if len(topics) == 0 {
		return nil, nil
	}
	tr := c.Transport()
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(broker), Transport: tr, Timeout: DialTimeout}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	found := make(map[string]bool, len(md.Topics))
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			found[t.Name] = true
		}
	}
	var missing []string
	for _, t := range topics {
		if !found[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// Partitions returns the partition IDs of each topic, failing with the
// names of topics that do not exist.
func (c *Conn) Partitions(ctx context.Context, topics []string) (map[string][]int, error) {
	tr := c.Transport()
	defer tr.CloseIdleConnections()
	var lastErr error
	for _, b := range c.Brokers {
		cl := &kafka.Client{Addr: kafka.TCP(b), Transport: tr, Timeout: DialTimeout}
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err != nil {
			lastErr = fmt.Errorf("broker %s: %w", b, err)
			continue
		}
		out := make(map[string][]int, len(topics))
		for _, t := range md.Topics {
			if t.Error != nil || len(t.Partitions) == 0 {
				continue
			}
			ids := make([]int, 0, len(t.Partitions))
			for _, p := range t.Partitions {
				ids = append(ids, p.ID)
			}
			slices.Sort(ids)
			out[t.Name] = ids
		}
		var missing []string
		for _, t := range topics {
			if _, ok := out[t]; !ok {
				missing = append(missing, fmt.Sprintf("%q", t))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("list partitions: topics %s do not exist on brokers %s", strings.Join(missing, ", "), strings.Join(c.Brokers, ","))
		}
		return out, nil
	}
	return nil, fmt.Errorf("list partitions: no broker reachable: %w", lastErr)
}

// hint says what to fix for a broker connection error.
func hint(err error) string {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var kerr kafka.Error
	switch {
	case errors.As(err, &dnsErr):
		return "check the broker host name"
	case errors.As(err, &certErr):
		return "check tls.caFile and tls.serverName"
	case errors.As(err, &recErr):
		return "the broker does not speak TLS here: check the port or disable tls"
	case errors.As(err, &kerr) && (kerr == kafka.SASLAuthenticationFailed || kerr == kafka.UnsupportedSASLMechanism || kerr == kafka.IllegalSASLState):
		return "check sasl.mechanism, sasl.username and sasl.password"
	case strings.Contains(err.Error(), "certificate required"):
		return "the broker requires a client certificate: set tls.certFile and tls.keyFile"
	case strings.Contains(err.Error(), "tls: "):
		return "check the tls settings against the broker's listener"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the broker closed the connection: check whether the listener expects tls or sasl"
	case errors.As(err, &opErr):
		return "check that the broker runs and the address and port are right"
	case errors.Is(err, context.DeadlineExceeded):
		return "the broker did not answer in time: check the address, firewall and tls settings"
	}
	return "check brokers, tls and sasl settings"
}
