"""`make mutants`: deliberate breaks of replyd's guarantees, each of which its tests must catch."""
