"""One module per kind of page; each page's data function also serves its ``.json`` twin."""
