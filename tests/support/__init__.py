"""Test aids that reach the code through its hook seams, never through production parameters."""
