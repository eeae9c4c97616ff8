"""The search spaces that ship with the package (`ganpipe list spaces`)."""
