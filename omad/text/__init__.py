"""Text: pt-BR normalisation for speech, number words, encodings of text files, caption line layout."""
