"""The process runtime: settings, the long-lived components, the daemon and its workers."""
