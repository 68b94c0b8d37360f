(** * At Coq's real numbers

    The main statements are over an abstract [realType]; mathcomp-analysis
    makes the standard library's real numbers [R] one ([Rstruct]).  These
    are the statements at [R]: their assumptions are mathcomp-analysis's
    classical axioms and the axioms of the standard library's reals. *)

From mathcomp Require Import Rstruct.
From AttnExpressivity Require Import Concentration Theorem1.

Definition concentration_R := @concentration real_realType.
Definition theorem1_R := @theorem1 real_realType.
