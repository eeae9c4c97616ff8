"""Process plumbing every layer may use: waiting for a service, telling transient faults from
permanent ones, signals, log filters. Nothing here knows about GANs or the pipeline's steps."""
