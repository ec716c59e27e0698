package tekton

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/tektoncd/pipeline/pkg/entrypoint"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
)

// NodeOptions configure the node stand-in.
type NodeOptions struct {
	// Path is put before the machine's PATH for every step (e.g. a
	// directory with crane in it).
	Path []string
	// Env is added to every step's environment.
	Env []string
}

// Node stands in for a node's kubelet and for Tekton's entrypoint in each
// step container, for the Pods Tekton creates (label
// app.kubernetes.io/managed-by=tekton-pipelines):
//
//   - Init containers: `prepare` (entrypoint init) creates the step
//     directories; `place-scripts` runs Tekton's own shell script (with the
//     entrypoint's decode-script done by base64 -d); `working-dir-initializer`
//     creates its directories.
//   - Steps: every step container is started at once and runs Tekton's
//     entrypoint code (pkg/entrypoint.Entrypointer, this module's Tekton
//     version): it waits for the previous step's post file (and the first
//     for the downward "ready" file, written when the controller sets
//     tekton.dev/ready), runs the step's script or command on this machine
//     with /bin/sh and the machine's tools, reads results, and writes the
//     termination message the controller reads. The container's state is
//     then written as a kubelet writes it (terminated, exit code, reason,
//     message, times) and the Pod ends Succeeded or Failed.
//   - Volumes: each volume is a directory (emptyDir and Tekton's internal
//     volumes per Pod; a PersistentVolumeClaim per claim, shared by the Pods
//     that mount it; ConfigMap, Secret and downwardAPI annotation items
//     written as files). A step sees its mounts by path rewriting: every
//     mount path in its script, command, arguments, environment and working
//     directory is replaced by the directory (no mount namespace, no chroot).
//   - Images are not pulled or run: a step runs on this machine whatever
//     its image. A container's imageID is its image when pinned by digest,
//     else the digest a loopback registry (127.0.0.1, localhost) gives for
//     the tag; any other tag fails as ErrImagePull, as a node without the
//     image and without the network would.
//
// Not emulated: step results (a step declaring its own results, as
// StepActions do, fails saying so), resource limits, security contexts
// (steps run as this process's user), networking and hermetic steps, sidecars (running until
// the steps end, then terminated), breakpoints and debug, SPIRE, stdout /
// stderr files (logs are kept in memory), node selection and scheduling.
// Deleting a Pod stops its steps (their processes are killed).
type Node struct {
	opts NodeOptions
	dir  string
	kube kubernetes.Interface

	stop     chan struct{}
	stopOnce sync.Once
	shutdown func()

	mu   sync.Mutex
	pods map[types.UID]*podRun
	wg   sync.WaitGroup
}

// ManagedBy is the label Tekton puts on the Pods it creates.
const ManagedBy = "app.kubernetes.io/managed-by=tekton-pipelines"

// StartNode starts the node stand-in; it stops with the test.
func StartNode(t testing.TB, env *envtest.Env, opts NodeOptions) *Node {
	t.Helper()
	n, err := RunNode(env.Config, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("node stand-in:\n%s", n.Logs())
		}
	})
	return n
}

// RunNode starts the node stand-in with its scratch directory dir; Stop
// stops it (and every step still running).
func RunNode(cfg *rest.Config, dir string, opts NodeOptions) (*Node, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{opts: opts, dir: dir, kube: kube, pods: map[types.UID]*podRun{}, stop: make(chan struct{})}
	factory := informers.NewSharedInformerFactory(kube, 0)
	inf := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = ManagedBy
	})).Core().V1().Pods().Informer()
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { n.observe(o) },
		UpdateFunc: func(_, o any) { n.observe(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				n.forget(p.UID)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	// The service account controller's part: every namespace has "default".
	_, err = factory.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		if ns, ok := o.(*corev1.Namespace); ok {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}
			_, _ = kube.CoreV1().ServiceAccounts(ns.Name).Create(context.Background(), sa, metav1.CreateOptions{})
		}
	}})
	if err != nil {
		return nil, err
	}
	factory.Start(n.stop)
	go inf.Run(n.stop)
	n.shutdown = factory.Shutdown
	return n, nil
}

// Stop stops watching and kills every step still running.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		close(n.stop)
		n.shutdown()
		n.mu.Lock()
		for _, r := range n.pods {
			r.cancel()
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
}

// Logs are every step's output so far, by Pod and container.
func (n *Node) Logs() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	for _, r := range n.pods {
		r.mu.Lock()
		for _, c := range r.order {
			fmt.Fprintf(&b, "== %s/%s %s\n%s", r.pod.Namespace, r.pod.Name, c, r.logs[c])
		}
		r.mu.Unlock()
	}
	return b.String()
}

// observe starts a Pod's run the first time it is seen, and feeds its
// annotations to the downward volume after.
func (n *Node) observe(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	if p.DeletionTimestamp != nil {
		n.forget(p.UID)
		return
	}
	n.mu.Lock()
	r, seen := n.pods[p.UID]
	if !seen {
		ctx, cancel := context.WithCancel(context.Background())
		r = &podRun{node: n, pod: p.DeepCopy(), ctx: ctx, cancel: cancel, logs: map[string]*proc.Buffer{}}
		n.pods[p.UID] = r
		n.wg.Add(1)
	}
	n.mu.Unlock()
	if !seen {
		go func() {
			defer n.wg.Done()
			r.run()
		}()
		return
	}
	r.annotations(p)
}

func (n *Node) forget(uid types.UID) {
	n.mu.Lock()
	r := n.pods[uid]
	n.mu.Unlock()
	if r != nil {
		r.cancel()
	}
}

// podRun is one Pod on the stand-in node.
type podRun struct {
	node   *Node
	pod    *corev1.Pod
	ctx    context.Context
	cancel context.CancelFunc
	// dir is the Pod's directory; volumes maps a volume's name to its own.
	dir     string
	volumes map[string]string

	mu     sync.Mutex
	status corev1.PodStatus
	order  []string
	logs   map[string]*proc.Buffer
}

func (r *podRun) log(container string) *proc.Buffer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.logs[container]; ok {
		return l
	}
	l := &proc.Buffer{Limit: 64 << 10}
	r.logs[container], r.order = l, append(r.order, container)
	return l
}

// run plays the Pod's life: volumes, images, init containers, then the
// steps together, then its phase.
func (r *podRun) run() {
	p := r.pod
	r.dir = filepath.Join(r.node.dir, "pods", p.Namespace, p.Name+"-"+string(p.UID)[:8])
	if err := r.makeVolumes(r.dir); err != nil {
		r.fail("volumes", err)
		return
	}
	now := metav1.Now()
	r.mu.Lock()
	r.status = corev1.PodStatus{Phase: corev1.PodPending, HostIP: "127.0.0.1", PodIP: "127.0.0.1", StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
	r.mu.Unlock()
	images := map[string]string{}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		id, err := imageID(r.ctx, c.Image)
		if err != nil {
			r.waiting(c.Name, "ErrImagePull", err.Error())
			return
		}
		images[c.Name] = id
	}
	for _, c := range p.Spec.InitContainers {
		start := metav1.Now()
		code, msg := r.initContainer(c)
		st := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: images[c.Name], State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: int32(code), Reason: reason(code), Message: msg, StartedAt: start, FinishedAt: metav1.Now()}}}
		r.mu.Lock()
		r.status.InitContainerStatuses = append(r.status.InitContainerStatuses, st)
		r.mu.Unlock()
		if code != 0 {
			r.setPhase(corev1.PodFailed)
			return
		}
	}
	started := metav1.Now()
	r.mu.Lock()
	r.status.Phase = corev1.PodRunning
	r.status.Conditions = append(r.status.Conditions,
		corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
		corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
		corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started})
	for _, c := range p.Spec.Containers {
		r.status.ContainerStatuses = append(r.status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: images[c.Name],
			Ready: true, Started: ptr(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}})
	}
	r.mu.Unlock()
	if !r.publish() {
		return
	}
	var wg sync.WaitGroup
	var steps []corev1.Container
	for _, c := range p.Spec.Containers {
		if strings.HasPrefix(c.Name, "step-") {
			steps = append(steps, c)
		}
	}
	for _, c := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, msg := r.step(c)
			r.terminated(c.Name, code, msg)
			r.publish()
		}()
	}
	wg.Wait()
	failed := false
	r.mu.Lock()
	for i, cs := range r.status.ContainerStatuses {
		if cs.State.Running != nil { // sidecars end with the steps
			r.status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: cs.State.Running.StartedAt, FinishedAt: metav1.Now()}}
			r.status.ContainerStatuses[i].Ready = false
		}
		if t := r.status.ContainerStatuses[i].State.Terminated; t != nil && t.ExitCode != 0 {
			failed = true
		}
	}
	r.mu.Unlock()
	if failed {
		r.setPhase(corev1.PodFailed)
	} else {
		r.setPhase(corev1.PodSucceeded)
	}
}

func ptr[T any](v T) *T { return &v }

func reason(code int) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// imageID is what a kubelet reports for an image it pulled.
func imageID(ctx context.Context, image string) (string, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return "", fmt.Errorf("invalid image %q: %w", image, err)
	}
	if d, ok := ref.(name.Digest); ok {
		return d.String(), nil
	}
	reg := ref.Context().RegistryStr()
	host := strings.Split(reg, ":")[0]
	if host != "127.0.0.1" && host != "localhost" {
		return "", fmt.Errorf("failed to pull image %q: the node stand-in pulls tags only from loopback registries (pin the image by digest)", image)
	}
	desc, err := remote.Head(ref, remote.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("failed to pull image %q: %w", image, err)
	}
	return ref.Context().Digest(desc.Digest.String()).String(), nil
}

// makeVolumes creates each volume's directory.
func (r *podRun) makeVolumes(podDir string) error {
	r.volumes = map[string]string{}
	for _, v := range r.pod.Spec.Volumes {
		dir := filepath.Join(podDir, "volumes", v.Name)
		if v.PersistentVolumeClaim != nil {
			dir = filepath.Join(r.node.dir, "claims", r.pod.Namespace, v.PersistentVolumeClaim.ClaimName)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r.volumes[v.Name] = dir
		switch {
		case v.ConfigMap != nil:
			cm, err := r.node.kube.CoreV1().ConfigMaps(r.pod.Namespace).Get(r.ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil && !(apierrors.IsNotFound(err) && v.ConfigMap.Optional != nil && *v.ConfigMap.Optional) {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if cm != nil {
				for k, val := range cm.Data {
					if err := os.WriteFile(filepath.Join(dir, k), []byte(val), 0o644); err != nil {
						return err
					}
				}
			}
		case v.Secret != nil:
			s, err := r.node.kube.CoreV1().Secrets(r.pod.Namespace).Get(r.ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil && !(apierrors.IsNotFound(err) && v.Secret.Optional != nil && *v.Secret.Optional) {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if s != nil {
				for k, val := range s.Data {
					if err := os.WriteFile(filepath.Join(dir, k), val, 0o600); err != nil {
						return err
					}
				}
			}
		}
	}
	r.annotations(r.pod)
	return nil
}

// annotations writes the downwardAPI volumes' annotation items.
func (r *podRun) annotations(p *corev1.Pod) {
	if r.volumes == nil {
		return
	}
	for _, v := range r.pod.Spec.Volumes {
		if v.DownwardAPI == nil {
			continue
		}
		for _, item := range v.DownwardAPI.Items {
			if item.FieldRef == nil {
				continue
			}
			key, ok := strings.CutPrefix(item.FieldRef.FieldPath, "metadata.annotations['")
			if !ok {
				continue
			}
			key = strings.TrimSuffix(key, "']")
			if val, ok := p.Annotations[key]; ok {
				_ = os.WriteFile(filepath.Join(r.volumes[v.Name], item.Path), []byte(val), 0o644)
			}
		}
	}
}

// mounts maps a container's mount paths to directories, longest first.
type mounts []struct{ path, dir string }

func (r *podRun) mountsOf(c corev1.Container) mounts {
	// What a container writes under /tekton outside its volumes (the
	// termination message) stays in its own directory.
	m := mounts{{"/tekton", filepath.Join(r.dir, "containers", c.Name, "tekton")}}
	for _, vm := range c.VolumeMounts {
		dir, ok := r.volumes[vm.Name]
		if !ok {
			continue
		}
		m = append(m, struct{ path, dir string }{filepath.Clean(vm.MountPath), filepath.Join(dir, vm.SubPath)})
	}
	sort.Slice(m, func(i, j int) bool { return len(m[i].path) > len(m[j].path) })
	return m
}

// path maps one absolute path into its mount's directory.
func (m mounts) path(p string) string {
	for _, mt := range m {
		if p == mt.path || strings.HasPrefix(p, mt.path+"/") {
			return mt.dir + strings.TrimPrefix(p, mt.path)
		}
	}
	return p
}

// mounted reports whether a host path is in one of the mounts' directories.
func (m mounts) mounted(p string) bool {
	for _, mt := range m {
		if p == mt.dir || strings.HasPrefix(p, mt.dir+"/") {
			return true
		}
	}
	return false
}

// text rewrites every mount path in a script, an argument or a value:
// an absolute path that starts where a path cannot continue (not after a
// letter, digit, '.', '_', '-' or '/') and whose mount path ends at a '/'
// or where a name cannot continue.
func (m mounts) text(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '/' && (i == 0 || !pathChar(s[i-1])) {
			if mt, ok := m.at(s[i:]); ok {
				b.WriteString(mt.dir)
				i += len(mt.path)
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// at is the (longest) mount whose path starts s as whole path elements.
func (m mounts) at(s string) (struct{ path, dir string }, bool) {
	for _, mt := range m {
		if strings.HasPrefix(s, mt.path) && (len(s) == len(mt.path) || s[len(mt.path)] == '/' || !pathChar(s[len(mt.path)])) {
			return mt, true
		}
	}
	return struct{ path, dir string }{}, false
}

func pathChar(c byte) bool {
	return c == '.' || c == '_' || c == '-' || c == '/' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// initContainer plays one of Tekton's init containers.
func (r *podRun) initContainer(c corev1.Container) (int, string) {
	m := r.mountsOf(c)
	out := r.log(c.Name)
	args := append(append([]string{}, c.Command...), c.Args...)
	switch {
	case c.Name == "prepare" && len(args) >= 4 && args[1] == "init":
		// entrypoint init SRC DST STEP...: the step directories.
		for i, s := range args[4:] {
			dir := m.path(filepath.Join("/tekton/steps", s))
			if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
				return 1, err.Error()
			}
			_ = os.Symlink(dir, m.path(filepath.Join("/tekton/steps", fmt.Sprint(i))))
		}
		return 0, ""
	case c.Name == "place-scripts":
		bin := m.path("/tekton/bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return 1, err.Error()
		}
		// The entrypoint's decode-script: the file, base64-decoded, in place.
		decode := "#!/bin/sh\n[ \"$1\" = decode-script ] || exit 2\nbase64 -d < \"$2\" > \"$2.decoded\" && cat \"$2.decoded\" > \"$2\" && rm \"$2.decoded\"\n"
		if err := os.WriteFile(filepath.Join(bin, "entrypoint"), []byte(decode), 0o755); err != nil {
			return 1, err.Error()
		}
		return r.exec(c, m, out, args)
	case c.Name == "working-dir-initializer":
		for _, a := range c.Args {
			if err := os.MkdirAll(m.path(a), 0o755); err != nil {
				return 1, err.Error()
			}
		}
		return 0, ""
	default:
		fmt.Fprintf(out, "node stand-in: init container %s not emulated; it succeeds\n", c.Name)
		return 0, ""
	}
}

// exec runs a command of a container on this machine, paths rewritten.
func (r *podRun) exec(c corev1.Container, m mounts, out io.Writer, args []string) (int, string) {
	if len(args) == 0 {
		return 1, "no command"
	}
	cmd := r.command(r.ctx, c, m, out, args)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), ""
		}
		return 1, err.Error()
	}
	return 0, ""
}

func (r *podRun) command(ctx context.Context, c corev1.Container, m mounts, out io.Writer, args []string) *exec.Cmd {
	rewritten := make([]string, len(args))
	for i, a := range args {
		rewritten[i] = m.text(a)
	}
	if rewritten[0] == "sh" || rewritten[0] == "bash" {
		rewritten[0] = "/bin/" + rewritten[0]
	}
	cmd := exec.CommandContext(ctx, rewritten[0], rewritten[1:]...)
	path := strings.Join(append(append([]string{}, r.node.opts.Path...), os.Getenv("PATH")), ":")
	cmd.Env = []string{"PATH=" + path, "HOME=" + m.path("/tekton/home")}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+m.text(e.Value))
		}
	}
	cmd.Env = append(cmd.Env, r.node.opts.Env...)
	cmd.Dir = m.path("/workspace")
	if c.WorkingDir != "" {
		cmd.Dir = m.path(c.WorkingDir)
	}
	if _, err := os.Stat(cmd.Dir); err != nil {
		cmd.Dir = ""
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// step runs one step container through Tekton's entrypoint code and
// returns its exit code and termination message.
func (r *podRun) step(c corev1.Container) (int, string) {
	m := r.mountsOf(c)
	out := r.log(c.Name)
	args := append(append([]string{}, c.Command...), c.Args...)
	if len(args) == 0 || args[0] != "/tekton/bin/entrypoint" {
		code, msg := r.exec(c, m, out, args)
		return code, msg
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(out)
	ep := fs.String("entrypoint", "", "")
	waitFiles := fs.String("wait_file", "", "")
	waitContent := fs.Bool("wait_file_content", false, "")
	postFile := fs.String("post_file", "", "")
	termPath := fs.String("termination_path", "/tekton/termination", "")
	results := fs.String("results", "", "")
	stepResults := fs.String("step_results", "", "")
	timeout := fs.Duration("timeout", 0, "")
	onError := fs.String("on_error", "", "")
	metaDir := fs.String("step_metadata_dir", "", "")
	resultFrom := fs.String("result_from", entrypoint.ResultExtractionMethodTerminationMessage, "")
	for _, ignored := range []string{"stdout_path", "stderr_path", "when_expressions"} {
		fs.String(ignored, "", "")
	}
	for _, ignored := range []string{"breakpoint_on_failure", "debug_before_step", "enable_spire"} {
		fs.Bool(ignored, false, "")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 1, err.Error()
	}
	command := fs.Args()
	if *ep != "" {
		command = append([]string{*ep}, command...)
	}
	if len(command) > 0 {
		// Tekton's entrypoint code reads the script (step artifacts) at the
		// path it gets: the rewritten one.
		command[0] = m.path(command[0])
	}
	term := m.path(*termPath)
	_ = os.MkdirAll(filepath.Dir(term), 0o755)
	var waits []string
	for _, w := range strings.Split(*waitFiles, ",") {
		if w != "" {
			waits = append(waits, w)
		}
	}
	e := entrypoint.Entrypointer{
		Command: command, WaitFiles: waits, WaitFileContent: *waitContent, PostFile: *postFile,
		TerminationPath:        term,
		Waiter:                 waiter{ctx: r.ctx, m: m},
		Runner:                 runner{r: r, c: c, m: m, out: out},
		PostWriter:             postWriter{m: m},
		Results:                strings.Split(*results, ","),
		StepResults:            strings.Split(*stepResults, ","),
		OnError:                *onError,
		StepMetadataDir:        m.path(*metaDir),
		ResultsDirectory:       m.path("/tekton/results"),
		ResultExtractionMethod: *resultFrom,
	}
	if *timeout != 0 {
		e.Timeout = timeout
	}
	if len(e.StepResults) > 0 && e.StepResults[0] != "" {
		// The entrypoint reads task and step results from one directory
		// once it is told one; the stand-in must tell it (the paths are
		// rewritten), so step results would be read from the wrong place.
		msg := "node stand-in: step results (StepActions' own results) are not emulated"
		fmt.Fprintln(out, msg)
		return 1, msg
	}
	err := e.Go()
	if err != nil {
		fmt.Fprintf(out, "entrypoint: %v\n", err)
	}
	msg, _ := os.ReadFile(term)
	return exitCode(err, *onError), string(msg)
}

// exitCode is the entrypoint binary's exit code for Go's error (cmd/entrypoint).
func exitCode(err error, onError string) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	var ce entrypoint.ContextError
	switch {
	case errors.As(err, &ce) && entrypoint.IsContextCanceledError(err):
		return int(syscall.SIGKILL)
	case errors.As(err, &ee):
		if onError == entrypoint.ContinueOnError {
			return 0
		}
		return ee.ExitCode()
	default:
		return 1
	}
}

// waiter is the entrypoint's file waiter on the rewritten paths.
type waiter struct {
	ctx context.Context
	m   mounts
}

func (w waiter) Wait(ctx context.Context, file string, expectContent, _ bool) error {
	if file == "" {
		return nil
	}
	file = w.m.path(file)
	for {
		if info, err := os.Stat(file); err == nil && (!expectContent || info.Size() > 0) {
			return nil
		}
		if _, err := os.Stat(file + ".err"); err == nil {
			return entrypoint.ErrSkipPreviousStepFailed
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return entrypoint.ErrContextDeadlineExceeded
			}
			return entrypoint.ErrContextCanceled
		case <-w.ctx.Done():
			return entrypoint.ErrContextCanceled
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type postWriter struct{ m mounts }

func (p postWriter) Write(file, content string) {
	if file == "" {
		return
	}
	file = p.m.path(file)
	_ = os.MkdirAll(filepath.Dir(file), 0o755)
	_ = os.WriteFile(file, []byte(content), 0o644)
}

// runner runs the step's command on this machine.
type runner struct {
	r   *podRun
	c   corev1.Container
	m   mounts
	out io.Writer
}

func (rn runner) Run(ctx context.Context, args ...string) error {
	if len(args) == 0 {
		return nil
	}
	// The script Tekton placed (in a mount), its paths rewritten.
	if rn.m.mounted(args[0]) {
		if b, err := os.ReadFile(args[0]); err == nil {
			if err := os.WriteFile(args[0], []byte(rn.m.text(string(b))), 0o755); err != nil {
				return err
			}
		}
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-rn.r.ctx.Done(): // the Pod was deleted
			cancel()
		case <-stop.Done():
		}
	}()
	cmd := rn.r.command(stop, rn.c, rn.m, rn.out, args)
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return entrypoint.ErrContextDeadlineExceeded
		}
		if stop.Err() != nil {
			return entrypoint.ErrContextCanceled
		}
		return err
	}
	return nil
}

// Compile-time checks: the stand-in implements the entrypoint's interfaces.
var (
	_ entrypoint.Waiter     = waiter{}
	_ entrypoint.PostWriter = postWriter{}
	_ entrypoint.Runner     = runner{}
)

// terminated records a container's end.
func (r *podRun) terminated(container string, code int, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, cs := range r.status.ContainerStatuses {
		if cs.Name != container {
			continue
		}
		started := metav1.Now()
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		r.status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: int32(code), Reason: reason(code), Message: msg, StartedAt: started, FinishedAt: metav1.Now()}}
		r.status.ContainerStatuses[i].Ready = false
		r.status.ContainerStatuses[i].Started = ptr(false)
	}
}

// waiting leaves the Pod pending with a container that cannot start.
func (r *podRun) waiting(container, why, msg string) {
	r.mu.Lock()
	for _, c := range r.pod.Spec.Containers {
		r.status.ContainerStatuses = append(r.status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image})
	}
	for i := range r.status.ContainerStatuses {
		if r.status.ContainerStatuses[i].Name == container || container == "" {
			r.status.ContainerStatuses[i].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: why, Message: msg}}
		}
	}
	for _, c := range r.pod.Spec.InitContainers {
		if c.Name == container {
			r.status.InitContainerStatuses = append(r.status.InitContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: why, Message: msg}}})
		}
	}
	r.mu.Unlock()
	r.publish()
}

func (r *podRun) fail(what string, err error) {
	fmt.Fprintf(r.log("node"), "node stand-in: %s: %v\n", what, err)
	r.mu.Lock()
	r.status.Phase, r.status.Reason, r.status.Message = corev1.PodFailed, "NodeStandIn", fmt.Sprintf("%s: %v", what, err)
	r.mu.Unlock()
	r.publish()
}

func (r *podRun) setPhase(ph corev1.PodPhase) {
	r.mu.Lock()
	r.status.Phase = ph
	r.mu.Unlock()
	r.publish()
}

// publish writes the Pod's status as the kubelet does (the status
// subresource), retrying on conflicts; false once the Pod is gone.
func (r *podRun) publish() bool {
	for i := 0; i < 20; i++ {
		if r.ctx.Err() != nil {
			return false
		}
		cur, err := r.node.kube.CoreV1().Pods(r.pod.Namespace).Get(r.ctx, r.pod.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		if cur.UID != r.pod.UID {
			return false
		}
		r.mu.Lock()
		cur.Status = *r.status.DeepCopy()
		r.mu.Unlock()
		_, err = r.node.kube.CoreV1().Pods(cur.Namespace).UpdateStatus(r.ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			return true
		}
		if !apierrors.IsConflict(err) {
			fmt.Fprintf(r.log("node"), "node stand-in: writing the status: %v\n", err)
			return false
		}
	}
	return false
}
