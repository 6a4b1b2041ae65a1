"""The I/O shell: the one Kubernetes gateway, the OIDC prober, the reconcile steps, the reconciler,
the work queue, leader election, metrics and the kopf wiring. Everything here reads or writes the world;
the decisions are made by the pure core one package up."""
