"""kubeadm, kubelet and kubectl stand-ins for the lab (see tests/standin/README.md)."""
