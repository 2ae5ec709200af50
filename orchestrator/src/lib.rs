//! Ferrotron orchestrator library.
