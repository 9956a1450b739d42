//! Tests for `deploy/`: the container image and the Kubernetes manifests.
//!
//! The library is empty on purpose; everything lives in `tests/deploy.rs`. The
//! tests need `kubectl` (for `kubectl kustomize`; a standalone `kustomize` works
//! too), `yamllint` and `kubernetes-validate` (`scripts/deps.sh` installs the
//! Python ones), and `ip`, `nft` and `python3` as root for the network-namespace lab
//! (`scripts/deps.sh` installs nftables and iproute2), and fail with a message naming
//! the missing tool.
//! This crate depends on slackgate-policy only, to load the shipped config and
//! policy exactly as `slackgate check` does.
