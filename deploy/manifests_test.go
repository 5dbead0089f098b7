package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/streamd/streamd/internal/version"
	"github.com/streamd/streamd/pkg/pipeline"
)

const (
	kubeDir    = "kubernetes"
	overlayDir = "kubernetes/overlays/example"
	baseDir    = "kubernetes/base"
	httpPort   = 9249
	probePort  = 9250
	authMount  = "/etc/streamd/auth"
	runAsUser  = int64(65532)
	dataMount  = "/var/lib/streamd"
	tmpMount   = "/tmp"
	configPath = "/etc/streamd/pipeline.yaml"
)

// newObject returns an empty typed object for a manifest's apiVersion and
// kind; manifests of any other kind are an error, so a new kind has to be
// added here and is then decoded strictly too.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	}
	return nil, fmt.Errorf("unexpected manifest kind %s %s", apiVersion, kind)
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes every YAML document in data into its typed object,
// failing on unknown or misspelt fields.
func decodeStrict(data []byte) ([]any, error) {
	var objs []any
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, fmt.Errorf("read document %d: %w", i, err)
		}
		obj, err := newObject(meta.APIVersion, meta.Kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("decode %s (document %d): %w", meta.Kind, i, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// decodePipeline loads a pipeline file the way streamd does: unknown
// fields, wrong types and invalid settings are all errors.
func decodePipeline(t *testing.T, data []byte) *pipeline.Config {
	t.Helper()
	env := map[string]string{"POD_NAME": "streamd-0", "POD_NAMESPACE": "streamd"}
	cfg, err := pipeline.Parse(data, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err, "pipeline file must match the pipeline schema")
	cfg.ApplyDefaults()
	require.NoError(t, cfg.Validate().Err(), "pipeline file must be valid")
	return cfg
}

// TestManifestsDecodeStrictly reads every file under kubernetes/ into its
// schema: manifests and patches into the Kubernetes API types, kustomization
// files into kustomize's, pipeline files into streamd's.
func TestManifestsDecodeStrictly(t *testing.T) {
	var files []string
	require.NoError(t, filepath.WalkDir(kubeDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	}))
	require.NotEmpty(t, files)

	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			switch filepath.Base(path) {
			case "kustomization.yaml":
				var k types.Kustomization
				require.NoError(t, k.Unmarshal(data))
				require.Equal(t, "Kustomization", k.Kind)
			case "pipeline.yaml":
				cfg := decodePipeline(t, data)
				require.NotEmpty(t, cfg.Name)
			default:
				require.Equal(t, ".yaml", filepath.Ext(path), "only YAML files belong in kubernetes/")
				objs, err := decodeStrict(data)
				require.NoError(t, err)
				require.NotEmpty(t, objs)
			}
		})
	}
}

// TestDecodeStrictRejectsUnknownFields shows the strict decoding catches the
// mistakes it is there for.
func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"misspelt field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n"},
		{"field at wrong level", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {template: {spec: {readOnlyRootFilesystem: true}}}\n"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"},
		{"networkpolicy typo", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelectr: {}}\n"},
		{"servicemonitor typo", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoint: []}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.doc))
			require.Error(t, err)
		})
	}
}

// rendered is the overlay as kubectl apply -k would send it.
type rendered struct {
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	statefulSets    []*appsv1.StatefulSet
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*monitoringv1.ServiceMonitor
	secrets         []*corev1.Secret
	netpols         []*networkingv1.NetworkPolicy
}

func render(t *testing.T, dir string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	out, err := m.AsYaml()
	require.NoError(t, err)
	objs, err := decodeStrict(out)
	require.NoError(t, err, "rendered %s must decode strictly", dir)

	var r rendered
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			r.namespaces = append(r.namespaces, o)
		case *corev1.ServiceAccount:
			r.serviceAccounts = append(r.serviceAccounts, o)
		case *corev1.Service:
			r.services = append(r.services, o)
		case *corev1.ConfigMap:
			r.configMaps = append(r.configMaps, o)
		case *appsv1.StatefulSet:
			r.statefulSets = append(r.statefulSets, o)
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *monitoringv1.ServiceMonitor:
			r.serviceMonitors = append(r.serviceMonitors, o)
		case *corev1.Secret:
			r.secrets = append(r.secrets, o)
		case *networkingv1.NetworkPolicy:
			r.netpols = append(r.netpols, o)
		}
	}
	require.Len(t, r.statefulSets, 1)
	require.Len(t, r.services, 1)
	require.Len(t, r.configMaps, 1)
	require.Len(t, r.serviceAccounts, 1)
	require.Len(t, r.pdbs, 1)
	require.Len(t, r.serviceMonitors, 1)
	require.Len(t, r.secrets, 1)
	require.Len(t, r.netpols, 1)
	return r
}

// TestKustomizeRender renders base and overlay in-process and checks what
// the cluster would run: security context, probes, volumes, wiring between
// objects.
func TestKustomizeRender(t *testing.T) {
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(dir, func(t *testing.T) {
			r := render(t, dir)
			sts := r.statefulSets[0]
			pod := sts.Spec.Template.Spec
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]

			checks := []struct {
				name string
				ok   bool
			}{
				{"pod runAsNonRoot", ptrTrue(pod.SecurityContext.RunAsNonRoot)},
				{"pod runAsUser 65532", pod.SecurityContext.RunAsUser != nil && *pod.SecurityContext.RunAsUser == runAsUser},
				{"pod seccomp RuntimeDefault", pod.SecurityContext.SeccompProfile != nil && pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
				{"container runAsNonRoot", c.SecurityContext != nil && ptrTrue(c.SecurityContext.RunAsNonRoot)},
				{"container runAsUser 65532", c.SecurityContext.RunAsUser != nil && *c.SecurityContext.RunAsUser == runAsUser},
				{"readOnlyRootFilesystem", ptrTrue(c.SecurityContext.ReadOnlyRootFilesystem)},
				{"allowPrivilegeEscalation false", c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation},
				{"capabilities drop ALL", c.SecurityContext.Capabilities != nil && len(c.SecurityContext.Capabilities.Drop) == 1 && c.SecurityContext.Capabilities.Drop[0] == "ALL" && len(c.SecurityContext.Capabilities.Add) == 0},
				{"container seccomp RuntimeDefault", c.SecurityContext.SeccompProfile != nil && c.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
				{"no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
				{"terminationGracePeriodSeconds 120", pod.TerminationGracePeriodSeconds != nil && *pod.TerminationGracePeriodSeconds == 120},
				{"liveness /healthz", httpProbe(c.LivenessProbe, "/healthz")},
				{"readiness /readyz", httpProbe(c.ReadinessProbe, "/readyz")},
				{"startup /healthz", httpProbe(c.StartupProbe, "/healthz")},
				{"probe port 9250", len(c.Ports) == 2 && c.Ports[1].Name == "probes" && c.Ports[1].ContainerPort == probePort},
				{"cpu and memory requests", !c.Resources.Requests.Cpu().IsZero() && !c.Resources.Requests.Memory().IsZero()},
				{"cpu and memory limits", !c.Resources.Limits.Cpu().IsZero() && !c.Resources.Limits.Memory().IsZero()},
				{"requests within limits", c.Resources.Requests.Cpu().Cmp(*c.Resources.Limits.Cpu()) <= 0 && c.Resources.Requests.Memory().Cmp(*c.Resources.Limits.Memory()) <= 0},
				{"http port 9249", len(c.Ports) == 2 && c.Ports[0].Name == "http" && c.Ports[0].ContainerPort == httpPort},
				{"scrape annotations", sts.Spec.Template.Annotations["prometheus.io/scrape"] == "true" && sts.Spec.Template.Annotations["prometheus.io/port"] == fmt.Sprint(probePort) && sts.Spec.Template.Annotations["prometheus.io/path"] == "/metrics"},
				{"image is pinned", !strings.HasSuffix(c.Image, ":latest") && strings.Contains(c.Image, ":")},
				{"runs the mounted pipeline", strings.Join(c.Args, " ") == "run --config "+configPath},
				{"governing service", sts.Spec.ServiceName == r.services[0].Name},
			}
			for _, ch := range checks {
				require.True(t, ch.ok, ch.name)
			}

			// Every writable path is an emptyDir; the config is read-only.
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			volumes := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				volumes[v.Name] = v
			}
			for _, path := range []string{dataMount, tmpMount} {
				m, ok := mounts[path]
				require.True(t, ok, "%s must be mounted", path)
				require.NotNil(t, volumes[m.Name].EmptyDir, "%s must be an emptyDir", path)
				require.False(t, m.ReadOnly)
			}
			cfgMount, ok := mounts[filepath.Dir(configPath)]
			require.True(t, ok, "pipeline config must be mounted at %s", filepath.Dir(configPath))
			require.True(t, cfgMount.ReadOnly)
			cfgVol := volumes[cfgMount.Name]
			require.NotNil(t, cfgVol.ConfigMap)
			require.Equal(t, r.configMaps[0].Name, cfgVol.ConfigMap.Name, "volume must reference the generated (hashed) ConfigMap")
			require.True(t, strings.HasPrefix(r.configMaps[0].Name, "streamd-pipeline-"), "ConfigMap name carries the content hash")

			// The pipeline in the ConfigMap is a valid pipeline file whose
			// writable paths lie on the data volume and whose port is the
			// container port.
			cfg := decodePipeline(t, []byte(r.configMaps[0].Data[filepath.Base(configPath)]))
			require.Equal(t, fmt.Sprintf(":%d", httpPort), cfg.HTTP.Listen)
			require.Equal(t, fmt.Sprintf(":%d", probePort), cfg.HTTP.ProbeListen)

			// The admin tokens come from the Secret, mounted read-only, and
			// the base holds no token value.
			authVol := volumes[mounts[authMount].Name]
			require.True(t, mounts[authMount].ReadOnly, "%s must be read-only", authMount)
			require.NotNil(t, authVol.Secret, "%s must be a Secret volume", authMount)
			secret := r.secrets[0]
			require.Equal(t, secret.Name, authVol.Secret.SecretName)
			require.NotNil(t, authVol.Secret.DefaultMode)
			require.Zero(t, *authVol.Secret.DefaultMode&0o007, "the token must not be world-readable")
			for file, setting := range map[string]string{"token": cfg.HTTP.Auth.TokenFile, "read-token": cfg.HTTP.Auth.ReadTokenFile} {
				require.Equal(t, authMount+"/"+file, setting)
				v, ok := secret.StringData[file]
				require.True(t, ok, "the Secret has no key %s", file)
				require.Empty(t, v, "a real token never belongs in git")
			}
			require.False(t, cfg.HTTP.Auth.OpenReads)

			// The NetworkPolicy selects the pod, restricts ingress, and
			// admits only Prometheus, only to the probe port.
			np := r.netpols[0]
			require.Subset(t, sts.Spec.Template.Labels, np.Spec.PodSelector.MatchLabels)
			require.NotEmpty(t, np.Spec.PodSelector.MatchLabels)
			require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
			require.Len(t, np.Spec.Ingress, 1)
			rule := np.Spec.Ingress[0]
			require.Len(t, rule.Ports, 1)
			require.Equal(t, intstr.FromString("probes"), *rule.Ports[0].Port)
			require.Len(t, rule.From, 1)
			peer := rule.From[0]
			require.Nil(t, peer.IPBlock, "no address range is admitted")
			require.NotNil(t, peer.NamespaceSelector)
			require.NotNil(t, peer.PodSelector)
			require.Equal(t, "monitoring", peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
			require.Equal(t, "prometheus", peer.PodSelector.MatchLabels["app.kubernetes.io/name"])
			for _, in := range np.Spec.Ingress {
				for _, p := range in.Ports {
					require.NotEqual(t, intstr.FromString("http"), *p.Port, "no rule admits anyone to the admin API")
					require.NotEqual(t, intstr.FromInt32(httpPort), *p.Port, "no rule admits anyone to the admin API")
				}
			}
			for _, s := range cfg.Sinks {
				switch {
				case s.Parquet != nil:
					require.True(t, strings.HasPrefix(s.Parquet.Path, dataMount+"/"), "sink %s writes outside %s", s.Name, dataMount)
				case s.File != nil:
					require.True(t, strings.HasPrefix(s.File.Path, dataMount+"/"), "sink %s writes outside %s", s.Name, dataMount)
				}
			}

			// Service, PDB and ServiceMonitor select the pod.
			podLabels := sts.Spec.Template.Labels
			require.Subset(t, podLabels, sts.Spec.Selector.MatchLabels)
			svc := r.services[0]
			require.Subset(t, podLabels, svc.Spec.Selector)
			require.NotEmpty(t, svc.Spec.Selector)
			require.Len(t, svc.Spec.Ports, 2)
			require.Equal(t, intstr.FromString("http"), svc.Spec.Ports[0].TargetPort)
			require.Equal(t, intstr.FromString("probes"), svc.Spec.Ports[1].TargetPort)
			require.Subset(t, podLabels, r.pdbs[0].Spec.Selector.MatchLabels)
			require.NotNil(t, r.pdbs[0].Spec.MaxUnavailable)
			sm := r.serviceMonitors[0]
			require.Subset(t, svc.Labels, sm.Spec.Selector.MatchLabels)
			require.Len(t, sm.Spec.Endpoints, 1)
			require.Equal(t, svc.Spec.Ports[1].Name, sm.Spec.Endpoints[0].Port, "Prometheus scrapes the probe port")
			require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
			require.Equal(t, r.serviceAccounts[0].Name, pod.ServiceAccountName)
		})
	}
}

// TestOverlayExample checks what the example overlay changes over the base.
func TestOverlayExample(t *testing.T) {
	r := render(t, overlayDir)
	require.Len(t, r.namespaces, 1)
	ns := r.namespaces[0].Name
	require.Equal(t, "restricted", r.namespaces[0].Labels["pod-security.kubernetes.io/enforce"])
	for _, o := range []interface{ GetNamespace() string }{r.statefulSets[0], r.services[0], r.configMaps[0], r.serviceAccounts[0], r.pdbs[0], r.serviceMonitors[0], r.secrets[0], r.netpols[0]} {
		require.Equal(t, ns, o.GetNamespace())
	}
	sts := r.statefulSets[0]
	require.Equal(t, "ghcr.io/streamd/streamd:0.1.0", sts.Spec.Template.Spec.Containers[0].Image)
	require.NotNil(t, sts.Spec.Replicas)
	require.EqualValues(t, 1, *sts.Spec.Replicas)
	require.Equal(t, "4", sts.Spec.Template.Spec.Containers[0].Resources.Limits.Cpu().String())
	require.Regexp(t, `^arn:aws:iam::\d{12}:role/.+`, r.serviceAccounts[0].Annotations["eks.amazonaws.com/role-arn"])
}

func ptrTrue(b *bool) bool { return b != nil && *b }

func httpProbe(p *corev1.Probe, path string) bool {
	return p != nil && p.HTTPGet != nil && p.HTTPGet.Path == path && p.HTTPGet.Port == intstr.FromString("probes")
}

// TestDockerfile checks the image contract the manifests rely on: a static,
// trimmed build stamped with the version, distroless nonroot, port 9249,
// entrypoint and default pipeline path.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(data)

	for _, want := range []string{
		"FROM golang:1.26-bookworm@sha256:",
		"CGO_ENABLED=0 go build -trimpath",
		"FROM gcr.io/distroless/static-debian12:nonroot@sha256:",
		"USER 65532:65532",
		"ENV STREAMD_LISTEN=:9249",
		"--chown=65532:65532 /out/data " + dataMount,
		"EXPOSE 9249",
		`ENTRYPOINT ["/streamd"]`,
		`CMD ["run", "--config", "` + configPath + `"]`,
	} {
		require.Contains(t, df, want)
	}

	// Every base image is pinned by digest: a tag alone can be moved.
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	require.NotEmpty(t, froms)
	for _, m := range froms {
		require.Regexp(t, `@sha256:[0-9a-f]{64}$`, m[1], "base image %s is not pinned by digest", m[1])
	}

	// Every -X target exists: a renamed variable would otherwise silently
	// leave images reporting "dev".
	vars := map[string]string{
		"github.com/streamd/streamd/internal/version.Version":  version.Version,
		"github.com/streamd/streamd/internal/version.Revision": version.Revision,
	}
	xs := regexp.MustCompile(`-X ([\w./-]+)=`).FindAllStringSubmatch(df, -1)
	require.Len(t, xs, len(vars))
	for _, x := range xs {
		_, ok := vars[x[1]]
		require.True(t, ok, "ldflags -X %s names no version variable", x[1])
	}

	// The build context keeps what COPY needs.
	ignore, err := os.ReadFile("../.dockerignore")
	require.NoError(t, err)
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		for _, kept := range []string{"go.mod", "go.sum", "cmd", "pkg", "internal", "examples"} {
			require.NotEqual(t, kept, strings.TrimSuffix(line, "/"), ".dockerignore drops %s", kept)
		}
	}
	for _, dir := range []string{"../cmd/streamd", "../examples"} {
		if _, err := os.Stat(dir); err != nil {
			t.Skipf("%s does not exist yet: COPY sources not checked", dir)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--from=\S+ )?(\S+) `).FindAllStringSubmatch(df, -1) {
		if strings.HasPrefix(m[0], "COPY --from") || m[1] == "." {
			continue
		}
		_, err := os.Stat(filepath.Join("..", m[1]))
		require.NoError(t, err, "Dockerfile copies %s", m[1])
	}
}
