// Package imagegate is the image gate's admission handler: for Pods (and
// their ephemeral containers), Deployments, ReplicaSets, StatefulSets,
// DaemonSets, Jobs and CronJobs in namespaces labelled
// tollgate.dev/gate=enforce or warn, it checks every image with
// policy/images and, on the mutating path, pins each verified tag to its
// digest. It imports policy/... and webhook/reply, never signer/.
package imagegate
