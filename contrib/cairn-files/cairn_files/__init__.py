"""cairn-files: versioned context kept in plain files, as a third party would write a backend."""
