"""Content: papers, issues, the paper schema and the selection of papers for an issue."""
