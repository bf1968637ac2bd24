"""Raw dataset format (dataset.json + imagesTr/labelsTr), image I/O and the integrity check."""
