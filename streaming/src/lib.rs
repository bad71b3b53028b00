//! Corral's streaming protocols: the transports under the CRI streaming endpoints (exec, attach,
//! port-forward) that kubectl, the kubelet and crictl speak.
//!
//! [`spdy`] is SPDY/3.1 framing and a multiplexed session over any async byte stream, wire
//! compatible with `github.com/moby/spdystream`, which carries the Kubernetes `*.channel.k8s.io`
//! remote-command subprotocols and `portforward.k8s.io`.

pub mod spdy;
