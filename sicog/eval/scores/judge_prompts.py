"""The judge prompts of the GPT-judged benchmarks, as VLMEvalKit sends them (text, not code).

MM-Vet: the MM-Vet authors' grader prompt (few-shot table of question | ground truth | prediction |
correctness); MathVista: the MathVista authors' answer-extraction prompt (a task line and five
worked examples). A judge answers differently to any other wording, so these are kept to the
character: `benchmarks/vlmeval_agreement.py --scorers` checks them against the installed package."""

MMVET_GRADER = (
    '\n'
    'Compare the ground truth and prediction from AI models, to give a correctness score for '
    'the prediction.\n'
    '<AND> in the ground truth means it is totally right\n'
    'only when all elements in the ground truth are present in the prediction,\n'
    'and <OR> means it is totally right when any one element in the ground truth is present in '
    'the prediction.\n'
    'The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, '
    '0.9, or 1.0 (totally right).\n'
    'Just complete the last space of the correctness score.\n'
    '\n'
    'Question | Ground truth | Prediction | Correctness\n'
    '--- | --- | --- | ---\n'
    'What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0\n'
    'What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5\n'
    'What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5\n'
    'What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5\n'
    'What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0\n'
    'Can you explain this meme? | This meme is poking fun at the fact that the names of the countries\n'
    'Iceland and Greenland are misleading. Despite its name, Iceland is known for its '
    'beautiful green landscapes,\n'
    'while Greenland is mostly covered in ice and snow. The meme is saying that the person has '
    'trust issues\n'
    'because the names of these countries do not accurately represent their landscapes. |\n'
    "The meme talks about Iceland and Greenland. It's pointing out that despite their names,\n"
    "Iceland is not very icy and Greenland isn't very green. | 0.4\n"
    'Can you explain this meme? | This meme is poking fun at the fact that the names of the countries\n'
    'Iceland and Greenland are misleading. Despite its name, Iceland is known for its '
    'beautiful green landscapes,\n'
    'while Greenland is mostly covered in ice and snow. The meme is saying that the person has '
    'trust issues\n'
    'because the names of these countries do not accurately represent their landscapes. |\n'
    "The meme is using humor to point out the misleading nature of Iceland's and Greenland's names.\n"
    'Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in '
    'ice and snow.\n'
    "The text 'This is why I have trust issues' is a playful way to suggest\n"
    'that these contradictions can lead to distrust or confusion.\n'
    'The humor in this meme is derived from the unexpected contrast between the names of the '
    'countries\n'
    'and their actual physical characteristics. | 1.0\n'
)

MATHVISTA_TASK = (
    '\n'
    'Please read the following example.\n'
    'Then extract the answer from the model response and type it at the end of the prompt.\n'
    '\n'
)

MATHVISTA_EXAMPLES = (
    (
        '\n'
        'Hint: Please answer the question requiring an integer answer and provide the final value,\n'
        'e.g., 1, 2, 3, at the end.\n'
        '\n'
        'Question: Which number is missing?\n'
        '\n'
        'Model response: The number missing in the sequence is 14.\n'
        '\n'
        'Extracted answer: 14\n'
    ),
    (
        '\n'
        'Hint: Please answer the question requiring a floating-point number with one decimal place '
        'and provide the final value,\n'
        'e.g., 1.2, 1.3, 1.4, at the end.\n'
        '\n'
        'Question: What is the fraction of females facing the camera?\n'
        '\n'
        'Model response: The fraction of females facing the camera is 0.6,\n'
        'which means that six out of ten females in the group are facing the camera.\n'
        '\n'
        'Extracted answer: 0.6\n'
    ),
    (
        '\n'
        'Hint: Please answer the question requiring a floating-point number with two decimal '
        'places and provide the final value,\n'
        'e.g., 1.23, 1.34, 1.45, at the end.\n'
        '\n'
        'Question: How much money does Luca need to buy a sour apple candy and a butter-scotch '
        'candy? (Unit: $)\n'
        '\n'
        'Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.\n'
        '\n'
        'Extracted answer: 1.45\n'
    ),
    (
        '\n'
        'Hint: Please answer the question requiring a Python list as an answer and provide the '
        'final list,\n'
        'e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\n'
        '\n'
        'Question: Between which two years does the line graph saw its maximum peak?\n'
        '\n'
        'Model response: The line graph saw its maximum peak between 2007 and 2008.\n'
        '\n'
        'Extracted answer: [2007, 2008]\n'
    ),
    (
        '\n'
        'Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, '
        'at the end.\n'
        '\n'
        'Question: What fraction of the shape is blue?\n'
        '\n'
        'Choices: (A) 3/11 (B) 8/11 (C) 6/11 (D) 3/5\n'
        '\n'
        'Model response: The correct answer is (B) 8/11.\n'
        '\n'
        'Extracted answer: B\n'
    ),
)
