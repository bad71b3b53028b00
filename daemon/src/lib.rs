//! corrald library: configuration, the CRI server and its services.
