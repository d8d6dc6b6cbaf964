"""The built-in sample: a plausible porphyry Cu deposit, and the steps of `mis demo`."""
