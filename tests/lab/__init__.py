"""The provision test lab: Docker containers that act as SSH-reachable Debian hosts, plus a release mirror.

Everything the lab creates carries the docker label ``provision.lab=1`` and ``provision.lab.id=<lab id>``,
so cleanup can remove exactly the lab's own objects and nothing else on the machine.
"""

LAB_LABEL = "provision.lab"
LAB_ID_LABEL = "provision.lab.id"
