"""Storage by URI (a path, file://, s3://): locations, versioned datasets, and leases."""
