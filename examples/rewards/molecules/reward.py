"""A molecular-validity reward with RDKit, for "reward accurate molecular structures": the completion is read as a
SMILES string. Not a molecule: 0. A molecule: 0.5, and 1.0 when its molecular formula is the dataset's `formula`
column (a constraint the prompt asked for). RDKit's own messages about unparsable strings are silenced."""

from rdkit import Chem, RDLogger
from rdkit.Chem.rdMolDescriptors import CalcMolFormula

RDLogger.DisableLog("rdApp.*")


def _text(completion):
    return completion if isinstance(completion, str) else completion[-1]["content"]


def score(prompts, completions, formula, **_):
    scores = []
    for completion, wanted in zip(completions, formula):
        words = _text(completion).strip().split()
        molecule = Chem.MolFromSmiles(words[0]) if words else None
        if molecule is None:
            scores.append(0.0)
        else:
            scores.append(1.0 if CalcMolFormula(molecule) == wanted else 0.5)
    return scores
