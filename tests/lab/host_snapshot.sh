#!/bin/bash
# What a host looks like from a cluster's point of view (K3s or kubeadm), one "## section" per aspect, one fact per
# line, no counters or timestamps: files under the paths either flavor writes, the contents of the configuration files
# up edits, installed packages, systemd units and unit files, network interfaces, firewall rules, mounts, listening
# ports, network namespaces and processes. Comparing the output taken before `up` with the output after `reset` shows
# what a reset left behind. Used by tests/e2e/test_lifecycle.py, tests/e2e/test_kubeadm_*.py and molecule/reset.
cluster_paths="/etc/rancher /var/lib/rancher /var/lib/kubelet /var/lib/cni /run/k3s /run/flannel /run/netns
  /etc/systemd/system /usr/local/bin /etc/modules-load.d /etc/sysctl.d /etc/default
  /etc/kubernetes /var/lib/etcd /etc/containerd /etc/cni /opt/cni /etc/apt/sources.list.d /etc/apt/keyrings
  /etc/apt/preferences.d /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl /usr/bin/crictl /etc/crictl.yaml
  /lib/systemd/system/kubelet.service /usr/lib/systemd/system/kubelet.service /var/lib/calico /var/run/calico
  /var/run/cilium"

echo "## files"
# shellcheck disable=SC2086 # the list splits on purpose
find $cluster_paths 2>/dev/null | sort

echo "## contents"
for file in /etc/containerd/config.toml /etc/fstab /etc/crictl.yaml; do
  [ -f "$file" ] && sha256sum "$file"
done

echo "## packages"
dpkg-query --show --showformat='${Package} ${db:Status-Abbrev}\n' 2>/dev/null | sort

echo "## units"
# Targets are left out: starting any unit that wants network-online.target activates it for good.
systemctl list-units --all --no-legend --plain | awk '{print $1, $3, $4}' \
  | grep -v -E '^(session-|user@|user-|user-runtime-dir@|run-)|\.target ' | sort
systemctl list-unit-files --no-legend | awk '{print $1, $2}' | sort

echo "## interfaces"
ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort

echo "## iptables"
# Rules and chains without counters. Table headers and built-in chains with an ACCEPT policy are left out:
# iptables-nft creates them on first use, and an empty one filters nothing.
(iptables-save; ip6tables-save) 2>/dev/null | grep -v -E '^(#|\*|COMMIT)' \
  | grep -v -E '^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) ACCEPT' | sed -E 's/\[[0-9]+:[0-9]+\]//'

echo "## mounts"
awk '{print $5, $9}' /proc/self/mountinfo | sort

echo "## ports"
ss -Hltnu | awk '{print $1, $5}' | sort

echo "## netns"
ip netns list 2>/dev/null | sort

echo "## processes"
# The snapshot's own tools and whatever runs it (sshd, docker exec, an Ansible module) are left out.
cat /proc/[0-9]*/comm 2>/dev/null | grep -v -E '^(sshd|bash|sh|cat|sort|grep|awk|sed|python3|sleep|find|ip|ss|cut)$' \
  | sort -u
