"""Landing the sources: layouts, parsing, loaders, the shop extract and load reports."""
