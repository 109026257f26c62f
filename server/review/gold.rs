//! Placeholder: filled by the media/exports/gold move.
