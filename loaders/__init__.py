"""Loading raw files into the `raw` schema: the stream declarations (`streams`), the raw
schema (`schema`), the validation rules (`rules`) and the loader (`load`)."""
