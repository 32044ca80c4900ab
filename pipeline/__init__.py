"""The product layer: launches the services together for replay scoring, the demo and benchmarks."""
