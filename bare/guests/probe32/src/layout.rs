//! Descriptor encoding (placeholder).
