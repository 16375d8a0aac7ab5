//! SPI access and the registry tables in schema `pgrec` (models, encoders), shared by the API functions.
