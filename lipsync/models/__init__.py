"""Model families behind one ``Generator`` interface (``base``; ``wav2lip/``), the registry of
downloadable files (``registry``), safe weight loading (``safe_load``) and the models folders
(``folders``)."""
