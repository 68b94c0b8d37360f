(** * Boxes: the shift set of a kernel box, and the positions of an image

    Facts about the definitions of Layers.v that the statements rely on:
    a kernel box with sizes [ks] has [prod_a ks_a] indices; with positive
    dilations the offsets are distinct (one head per shift is a bijection
    onto the shift set); every target [q + Delta] of a query [q] of the image
    box lies in the padded box; a box has an enumeration without repetition
    ([box_enum]), so "the keys are the padded image" is a concrete key set. *)

From mathcomp Require Import all_ssreflect all_algebra zify.
From AttnExpressivity Require Import Layers.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section KernelBoxFacts.
Variables (D : nat) (ks ds : 'I_D -> nat).

Lemma card_kidx : #|kidx ks| = (\prod_(a < D) ks a)%N.
Proof.
rewrite card_dep_ffun foldrE big_map big_enum /=.
by apply: eq_bigr => a _; rewrite card_ord.
Qed.

(** For odd [K] and no dilation the shifts are the paper's
    [{- floor (K/2), ..., floor (K/2)}]; for even [K] they are PyTorch's
    "same" ([pad_lo = (K - 2) / 2], [pad_hi = K / 2]). *)
Lemma pad_undilated a : ds a = 1%N ->
  pad_lo ks ds a = ((ks a).-1)./2 /\ pad_hi ks ds a = (ks a)./2.
Proof.
rewrite /pad_hi /pad_lo => ->; rewrite !mul1n; split=> //.
case: (ks a) => [|k] //=; rewrite uphalf_half.
by rewrite -{1}(odd_double_half k) -addnn addnA addnK.
Qed.

Lemma kernel_offset_inj : (forall a, 0 < ds a)%N -> injective (kernel_offset ks ds).
Proof.
move=> ds_gt0 i j /rowP eq_ij; apply/ffunP => a; apply/val_inj => /=.
move: (eq_ij a); rewrite !mxE => /addIr [] /eqP.
by rewrite eqn_pmul2r // => /eqP.
Qed.

Lemma kernel_offset_bounds (i : kidx ks) a :
  - (pad_lo ks ds a)%:Z <= kernel_offset ks ds i 0 a <= (pad_hi ks ds a)%:Z.
Proof.
rewrite mxE /pad_hi; set p := pad_lo ks ds a.
have lt_i : (i a < ks a)%N := ltn_ord (i a).
have le_p : (p <= ds a * (ks a).-1)%N.
  by rewrite /p /pad_lo -{2}(odd_double_half (_ * _)) -addnn addnA leq_addl.
have le_id : (i a * ds a <= ds a * (ks a).-1)%N.
  by rewrite mulnC leq_mul2l -ltnS prednK ?lt_i ?orbT // (leq_ltn_trans _ lt_i).
lia.
Qed.

Lemma target_in_padded (lo hi q : pos D) (i : kidx ks) :
  in_box lo hi q ->
  in_box (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds) (q + kernel_offset ks ds i).
Proof.
move=> /forallP q_in; apply/forallP => a; move: (q_in a) (kernel_offset_bounds i a).
rewrite !mxE => /andP[h1 h2] /andP[h3 h4].
by rewrite ler_add ?(ler_add h2 h4).
Qed.

End KernelBoxFacts.

Section BoxEnumFacts.
Variable D : nat.

Lemma box_enum_uniq (lo hi : pos D) : uniq (box_enum lo hi).
Proof.
apply: filter_uniq; rewrite map_inj_uniq ?enum_uniq // => f g /addrI /rowP eq_fg.
by apply/ffunP => a; apply/val_inj; move: (eq_fg a); rewrite !mxE => -[].
Qed.

Lemma mem_box_enum (lo hi p : pos D) : (p \in box_enum lo hi) = in_box lo hi p.
Proof.
rewrite mem_filter andb_idr // => /forallP p_in.
pose f := [ffun a => inord (absz (p 0 a - lo 0 a)%R) : 'I_(box_side lo hi)].
apply/mapP; exists f; first exact: mem_enum.
apply/rowP => a; rewrite !mxE ffunE inordK.
  by move: (p_in a) => /andP[lo_p _]; rewrite gez0_abs ?subr_ge0 // addrC subrK.
rewrite ltnS; apply: leq_trans (leq_bigmax a) => /=.
move: (p_in a) => /andP[lo_p p_hi].
have lo_hi := le_trans lo_p p_hi.
by rewrite -lez_nat !gez0_abs ?subr_ge0 // ler_add2r.
Qed.

End BoxEnumFacts.
