"""Tools for vendors and integrators: inventory discovery, the published contract, the conformance check."""
