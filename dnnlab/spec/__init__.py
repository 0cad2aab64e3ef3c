"""The YAML spec's schema: pydantic models of its sections, the rules that span fields, wording.

`models` holds the pydantic models and the vocabulary, `loading` reads files (`extends:`
included), overrides and serializes, `wording` turns validation errors into one line,
`keras_names` lists the loss and metric names Keras accepts, and `checks` holds the rules that
span fields and the book's advice. May import `dnnlab.files` and `dnnlab.errors`; no TensorFlow.
"""
