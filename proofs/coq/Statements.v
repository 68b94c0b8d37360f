(** * Statements: what is proved, pinned

    Each main theorem's statement is written out here in full and checked
    against the proved one ([Check (@name : statement)]): a theorem whose
    statement drifts breaks the build.  Every definition, projection and
    notation the statements depend on, directly or through other definitions,
    is pinned by its unfolding ([erefl : name args = unfolding]), and the
    constructor of the layer's weights by its type; [proofs/coq/check] computes
    that list from the statements as Coq elaborates them and fails when a pin
    is missing.  This file only states: plain [Check] sentences, no
    definitions.  Read it against the paper; the proofs are in the files it
    names.

    Conventions: a position is a point of [Z^D] ([pos D], integer row
    vectors); [delta = k - q] (key minus query); head [h] looks at
    [q + Delta_h] (the paper's Lemma 1 writes [f(h) = q - k = - Delta_h]);
    images are maps from positions to row vectors, zero outside their box
    when zero-padded. *)

From mathcomp Require Import all_ssreflect all_algebra.
From mathcomp Require Import boolp classical_sets reals exp.
From mathcomp Require Import topology normedtype sequences Rstruct.
From AttnExpressivity Require Import Layers Boxes Lemma1 Lemma2.
From AttnExpressivity Require Import Concentration Theorem1 CoqReals.
From AttnExpressivity Require LowerBound.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Import numFieldNormedType.Exports.
Local Open Scope classical_set_scope.
Local Open Scope ring_scope.

(** ** Definitions *)

Section Definitions.
Variables (R : ringType) (D din dout dk dp dh nh : nat).
Variables (K : finType) (offset : K -> pos D).
Variables (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout).
Variables (X : image R D din) (q k : pos D) (keys : seq (pos D)).

(** The convolution (cross-correlation): [Conv(X)_q = sum_i X_(q + Delta_i) W_i + b]. *)
Check (erefl : conv offset W b X q = \sum_(i : K) X (q + offset i) *m W i + b).

(** The layer given its attention weights:
    [MHSA(X)_q = concat_h [(sum_k A^(h)_(q,k) X_k) W_val^(h)] W_out + b_out]. *)
Check (fun (att : 'I_nh -> pos D -> pos D -> R) (w_val : 'I_nh -> 'M[R]_(din, dh))
           (w_out : 'M[R]_(\sum_(h < nh) dh, dout)) =>
  erefl : mhsa_att keys att w_val w_out b X q =
          \mxrow_h ((\sum_(k <- keys) att h q k *: X k) *m w_val h) *m w_out + b).

(** [W_out^(h)]: the [h]-th block of [d_head] rows of [W_out]. *)
Check (fun (w_out : 'M[R]_(\sum_(h < nh) dh, dout)) (h : 'I_nh) =>
  erefl : out_block w_out h = submxcol w_out h).

(** The four-term relative score, [delta = k - q]. *)
Check (fun (P : mhsa_weights R din dout dk dp dh nh) (enc : pos D -> 'rV[R]_dp) (h : 'I_nh) =>
  erefl : score P enc X h q k =
    dotr (X q *m w_qry P h) (X k *m w_key P h)
    + dotr (X q *m w_qry P h) (enc (k - q) *m w_keyhat P h)
    + dotr (u_vec P h) (X k *m w_key P h)
    + dotr (v_vec P h) (enc (k - q) *m w_keyhat P h)).

(** Lemma 2's encoding and head vector. *)
Check (fun (delta Delta : 'rV[R]_D) (alpha : R) =>
  (erefl : enc_quad delta = row_mx (const_mx (sqnorm delta)) delta,
   erefl : head_vec alpha Delta = - alpha *: row_mx (const_mx 1) (- 2%:R *: Delta))).
Check (fun x y : 'rV[R]_D => erefl : dotr x y = \sum_(i < D) x 0 i * y 0 i).

(** Shift set of a kernel box: index [i] at [i_a d_a - floor (d_a (K_a - 1) / 2)]. *)
Check (fun (ks ds : 'I_D -> nat) (i : kidx ks) =>
  erefl : kernel_offset ks ds i = \row_a ((i a * ds a)%:Z - ((ds a * (ks a).-1)./2)%:Z)).

(** Zero padding, the padded box. *)
Check (fun (lo hi : pos D) =>
  (erefl : zero_pad lo hi X q = if in_box lo hi q then X q else 0,
   erefl : in_box lo hi q = [forall a, lo 0 a <= q 0 a <= hi 0 a])).
Check (fun (ks ds : 'I_D -> nat) =>
  (erefl : pad_lo_row ks ds = \row_a ((ds a * (ks a).-1)./2)%:Z,
   erefl : pad_hi_row ks ds = \row_a (ds a * (ks a).-1 - (ds a * (ks a).-1)./2)%:Z)).
Check (fun (ks ds : 'I_D -> nat) (a : 'I_D) =>
  (erefl : pad_lo ks ds a = ((ds a * (ks a).-1)./2)%N,
   erefl : pad_hi ks ds a = (ds a * (ks a).-1 - pad_lo ks ds a)%N)).

(** Positions, images, vectors: [pos D] is [Z^D] as integer row vectors; an
    image with [n] channels is a row vector at every position. *)
Check (erefl : pos D = 'rV[int]_D).
Check (fun n => erefl : image R D n = (pos D -> 'rV[R]_n)).
Check (fun p : pos D => erefl : posR R p = map_mx (fun z : int => z%:~R) p).
Check (fun x : 'rV[R]_D => erefl : sqnorm x = dotr x x).

(** Kernel indices of a box; the positions of a box, enumerated once each. *)
Check (fun ks : 'I_D -> nat => erefl : kidx ks = {dffun forall a : 'I_D, 'I_(ks a)}).
Check (fun lo hi : pos D =>
  (erefl : box_side lo hi = (\max_(a < D) absz (hi 0 a - lo 0 a)%R).+1,
   erefl : box_enum lo hi =
     [seq p <- [seq lo + \row_a (f a : nat)%:Z | f : {ffun 'I_D -> 'I_(box_side lo hi)}]
        | in_box lo hi p])).

(** The fields of the layer's weights. *)
Check (fun (a c : 'I_nh -> 'M[R]_(din, dk)) (e : 'I_nh -> 'M[R]_(dp, dk))
           (u v : 'I_nh -> 'rV[R]_dk) (wv : 'I_nh -> 'M[R]_(din, dh))
           (wo : 'M[R]_(\sum_(h < nh) dh, dout)) (bo : 'rV[R]_dout) =>
  let P := MhsaWeights a c e u v wv wo bo in
  (erefl : w_qry P = a, erefl : w_key P = c, erefl : w_keyhat P = e,
   erefl : u_vec P = u, erefl : v_vec P = v, erefl : w_val P = wv,
   erefl : w_out P = wo, erefl : b_out P = bo)).

End Definitions.

(** The layer's weights: the eight blocks of the four-term score, the values
    and the output, nothing else. *)
Check (@MhsaWeights : forall (R : ringType) (din dout dk dp dh nh : nat),
  ('I_nh -> 'M[R]_(din, dk)) -> ('I_nh -> 'M[R]_(din, dk)) -> ('I_nh -> 'M[R]_(dp, dk)) ->
  ('I_nh -> 'rV[R]_dk) -> ('I_nh -> 'rV[R]_dk) -> ('I_nh -> 'M[R]_(din, dh)) ->
  'M[R]_(\sum_(h < nh) dh, dout) -> 'rV[R]_dout -> mhsa_weights R din dout dk dp dh nh).

Section SoftmaxDefinitions.
Variables (F : fieldType) (D din dout dk dp dh nh : nat) (e : F -> F).
Variables (keys : seq (pos D)) (s : pos D -> F) (k : pos D).

(** Softmax over the keys, and the layer with softmax attention. *)
Check (erefl : softmax e keys s k = e (s k) / \sum_(k' <- keys) e (s k')).
Check (fun (P : mhsa_weights F din dout dk dp dh nh) (enc : pos D -> 'rV[F]_dp) X q =>
  erefl : mhsa e keys P enc X q =
          mhsa_att keys (fun h q => softmax e keys (score P enc X h q))
            (w_val P) (w_out P) (b_out P) X q).

End SoftmaxDefinitions.

Section RealDefinitions.
Variables (R : realType) (D din dout dh nh : nat) (K : finType).
Variables (offset : K -> pos D) (kernel_of_head : 'I_nh -> K).

(** [theta alpha = sum_(n in Z) exp (- alpha n^2)], as the supremum of the
    symmetric partial sums; [leak alpha D = 1 - theta(alpha)^-D]. *)
Check (fun (alpha : R) (N : nat) =>
  (erefl : theta_partial alpha N =
           \sum_(0 <= i < N.*2.+1) expR (- alpha * (((i%:Z - N%:Z) : int)%:~R) ^+ 2),
   erefl : theta alpha = sup (range (theta_partial alpha)),
   erefl : leak alpha D = 1 - (theta alpha ^+ D)^-1)).
Check (fun (alpha : R) (n : int) => erefl : gauss1 alpha n = expR (- alpha * (n%:~R) ^+ 2)).

(** The softmax of the quadratic score centred on a target [t]. *)
Check (fun (alpha : R) (keys : seq (pos D)) (t : pos D) =>
  erefl : gauss_softmax alpha keys t = softmax expR keys (fun k => - alpha * sqnorm (posR R (k - t)))).

(** [Delta_h], the shift head [h] looks at; Lemma 2's encoding of an integer offset. *)
Check (fun h : 'I_nh => erefl : shift_of_head offset kernel_of_head h = offset (kernel_of_head h)).
Check (fun delta : pos D => erefl : @quad_enc R D delta = enc_quad (posR R delta)).

(** One head per kernel index; the keys of a zero-padded image: the padded box. *)
Check (fun ks : 'I_D -> nat => erefl : @head_kernel D ks = enum_val).
Check (fun (ks ds : 'I_D -> nat) (lo hi : pos D) =>
  erefl : @padded_keys D ks ds lo hi = box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds)).

(** The construction: no content terms, [W_keyhat = I], [v^(h) = - alpha (1, - 2 Delta_h)],
    [b_out = b]; the layer [MHSA_alpha] uses [expR] and Lemma 2's encoding. *)
Check (fun (alpha : R) (w_val : 'I_nh -> 'M[R]_(din, dh))
           (w_out : 'M[R]_(\sum_(h < nh) dh, dout)) (b : 'rV[R]_dout) =>
  (erefl : construction offset kernel_of_head w_val w_out b alpha =
     MhsaWeights (fun _ => 0) (fun _ => 0) (fun _ => 1%:M) (fun _ => 0)
       (fun h => head_vec alpha (posR R (offset (kernel_of_head h)))) w_val w_out b,
   fun keys X q => erefl : layer offset kernel_of_head w_val w_out b alpha keys X q =
     mhsa expR keys (construction offset kernel_of_head w_val w_out b alpha)
       (fun delta : pos D => enc_quad (posR R delta)) X q)).

(** The data factor of channel [j]: [sum_h max_(k in keys) |X_k W_(Delta_h)|_j]. *)
Check (fun (W : K -> 'M[R]_(din, dout)) keys (X : image R D din) (j : 'I_dout) =>
  erefl : data_factor kernel_of_head W keys X j =
    \sum_(h < nh) \big[Num.max/0]_(k <- keys) `|(X k *m W (kernel_of_head h)) 0 j|).

End RealDefinitions.

(** ** Lemma 1 (heads as shifts): any ring, any [D], any kernel index type *)

Check (@Lemma1.lemma1 :
  forall (R : ringType) (D din dout dh nh : nat) (K : finType)
    (offset : K -> pos D) (kernel_of_head : 'I_nh -> K)
    (Hbij : bijective kernel_of_head)
    (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (keys : seq (pos D)) (Hkeys : uniq keys)
    (att : 'I_nh -> pos D -> pos D -> R)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (X : image R D din) (q : pos D)
    (HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h))
    (Htarget : forall h, q + offset (kernel_of_head h) \in keys)
    (Honehot : forall h k, k \in keys -> att h q k = (k == q + offset (kernel_of_head h))%:R),
  mhsa_att keys att w_val w_out b X q = conv offset W b X q).

(** One head per kernel index is one head per shift when the offsets are distinct. *)
Check (@Lemma1.shift_of_head_inj :
  forall (D nh : nat) (K : finType) (offset : K -> pos D) (kernel_of_head : 'I_nh -> K)
    (Hbij : bijective kernel_of_head) (Hoff : injective offset),
  injective (shift_of_head offset kernel_of_head)).

(** Value/output matrices exist as soon as [d_head >= rank W_Delta] for every shift. *)
Check (@Lemma1.lemma1_weights :
  forall (F : fieldType) (din dout dh nh : nat) (K : finType)
    (kernel_of_head : 'I_nh -> K) (W : K -> 'M[F]_(din, dout))
    (Hrank : forall i, (\rank (W i) <= dh)%N),
  exists (w_val : 'I_nh -> 'M[F]_(din, dh)) (w_out : 'M[F]_(\sum_(h < nh) dh, dout)),
    forall h, w_val h *m out_block w_out h = W (kernel_of_head h)).

(** The paper's remark: a head's product [W_val^(h) W_out^(h)] has rank at most [d_head]. *)
Check (@Lemma1.rank_val_out :
  forall (F : fieldType) (m n dh : nat) (V : 'M[F]_(m, dh)) (O : 'M[F]_(dh, n)),
  (\rank (V *m O) <= dh)%N).

(** The paper's condition [d_head >= d_out]. *)
Check (@Lemma1.lemma1_weights_dout :
  forall (F : fieldType) (din dout dh nh : nat) (K : finType)
    (kernel_of_head : 'I_nh -> K) (W : K -> 'M[F]_(din, dout))
    (Hdh : (dout <= dh)%N),
  exists (w_val : 'I_nh -> 'M[F]_(din, dh)) (w_out : 'M[F]_(\sum_(h < nh) dh, dout)),
    forall h, w_val h *m out_block w_out h = W (kernel_of_head h)).

(** The shift set of a kernel box: [prod_a K_a] indices, distinct shifts for
    positive dilations, targets of queries of the image inside the padded box;
    the padded box is a concrete key set. *)
Check (@Boxes.card_kidx :
  forall (D : nat) (ks : 'I_D -> nat), #|kidx ks| = (\prod_(a < D) ks a)%N).
Check (@Boxes.kernel_offset_inj :
  forall (D : nat) (ks ds : 'I_D -> nat) (Hds : forall a, (0 < ds a)%N),
  injective (kernel_offset ks ds)).
Check (@Boxes.target_in_padded :
  forall (D : nat) (ks ds : 'I_D -> nat) (lo hi q : pos D) (i : kidx ks)
    (Hq : in_box lo hi q),
  in_box (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds) (q + kernel_offset ks ds i)).
Check (@Boxes.mem_box_enum :
  forall (D : nat) (lo hi p : pos D), (p \in box_enum lo hi) = in_box lo hi p).
Check (@Boxes.box_enum_uniq : forall (D : nat) (lo hi : pos D), uniq (box_enum lo hi)).

(** ** Lemma 2 (quadratic encoding): any commutative ring, any [D] *)

Check (@Lemma2.lemma2 :
  forall (R : comRingType) (D : nat) (alpha : R) (Delta delta : 'rV[R]_D),
  dotr (head_vec alpha Delta) (enc_quad delta) =
  - alpha * (sqnorm (delta - Delta) - sqnorm Delta)).

(** Softmax ignores a constant, for any exponential [e]. *)
Check (@Lemma2.softmax_shift :
  forall (F : fieldType) (D : nat) (e : F -> F)
    (eD : forall x y, e (x + y) = e x * e y) (e_neq0 : forall x, e x != 0)
    (keys : seq (pos D)) (s : pos D -> F) (c : F),
  softmax e keys (fun k => s k + c) =1 softmax e keys s).

(** Hence the quadratic head centred on [Delta] weighs key [k] by
    [e (- alpha |k - (q + Delta)|^2)], normalised. *)
Check (@Lemma2.lemma2_softmax :
  forall (F : fieldType) (D : nat) (e : F -> F)
    (eD : forall x y, e (x + y) = e x * e y) (e_neq0 : forall x, e x != 0)
    (keys : seq (pos D)) (alpha : F) (Delta q : pos D),
  softmax e keys (fun k => dotr (head_vec alpha (posR F Delta)) (enc_quad (posR F (k - q))))
  =1 softmax e keys (fun k => - alpha * sqnorm (posR F (k - (q + Delta))))).

(** The quadratic term is needed: a linear encoding [r_delta = delta] cannot
    give the Gaussian score unless [alpha = 0]. *)
Check (@Lemma2.linear_encoding_fails :
  forall (R : numFieldType) (D : nat) (alpha c : R) (v Delta : 'rV[R]_D.+1)
    (Hfit : forall delta : pos D.+1,
       dotr v (posR R delta) + c = - alpha * sqnorm (posR R delta - Delta)),
  alpha = 0).

(** The appendix's anisotropic encoding in 2-D, [Lambda = Sigma^-1] symmetric. *)
Check (@Lemma2.lemma2_aniso :
  forall (R : numFieldType) (Lambda : 'M[R]_2) (Delta delta : 'rV[R]_2)
    (Hsym : Lambda^T = Lambda),
  dotr (head_vec_aniso Lambda Delta) (enc_aniso delta) =
  - qform Lambda (delta - Delta) / 2%:R + qform Lambda Delta / 2%:R).
Check (fun (R : numFieldType) (delta Delta : 'rV[R]_2) (Lambda : 'M[R]_2) =>
  (erefl : head_vec_aniso Lambda Delta =
     \row_i [:: (Delta *m Lambda) 0 0; (Delta *m Lambda) 0 1; - Lambda 0 0 / 2%:R;
               - Lambda 1 1 / 2%:R; - Lambda 0 1]`_i,
   erefl : enc_aniso delta = \row_i [:: delta 0 0; delta 0 1; delta 0 0 ^+ 2;
                                        delta 0 1 ^+ 2; delta 0 0 * delta 0 1]`_i,
   erefl : qform Lambda delta = (delta *m Lambda *m delta^T) 0 0)).

(** ** Concentration: uniform in the image *)

Check (@Concentration.concentration :
  forall (R : realType) (D : nat) (alpha : R) (keys : seq (pos D)) (t : pos D)
    (Halpha : 0 < alpha) (Hkeys : uniq keys) (Ht : t \in keys),
  \sum_(k <- keys | k != t)
      softmax expR keys (fun k => - alpha * sqnorm (posR R (k - t))) k
  <= leak alpha D).

(** The lattice sum over distinct integer offsets factorises through a box:
    at most [theta_N(alpha)^D]. *)
Check (@Concentration.sum_gauss_box :
  forall (R : realType) (D : nat) (alpha : R) (keys : seq (pos D)) (t : pos D) (N : nat)
    (Hkeys : uniq keys)
    (HN : forall (k : pos D) (a : 'I_D), k \in keys -> leq (absz ((k - t : pos D) 0 a)) N),
  \sum_(k <- keys) expR (- alpha * sqnorm (posR R (k - t))) <= theta_partial alpha N ^+ D).

Check (@Concentration.theta_cvg :
  forall (R : realType) (alpha : R) (Halpha : 0 < alpha),
  theta_partial alpha --> theta alpha).

Check (@Concentration.leak_le_closed :
  forall (R : realType) (alpha : R) (D : nat) (Halpha : 0 < alpha),
  leak alpha D <= D%:R * (2%:R * (expR (- alpha) / (1 - expR (- alpha))))).

Check (@Concentration.leak_cvg0 :
  forall (R : realType) (D : nat), (fun alpha : R => leak alpha D) @ +oo --> (0 : R)).

(** ** Theorem 1 *)

(** Quantitative, for every query whose targets are keys. *)
Check (@Theorem1.theorem1_bound :
  forall (R : realType) (D din dout dh nh : nat) (K : finType)
    (offset : K -> pos D) (kernel_of_head : 'I_nh -> K)
    (Hbij : bijective kernel_of_head)
    (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h))
    (alpha : R) (keys : seq (pos D)) (X : image R D din) (q : pos D) (j : 'I_dout)
    (Halpha : 0 < alpha) (Hkeys : uniq keys)
    (Htarget : forall h, q + offset (kernel_of_head h) \in keys),
  `|layer offset kernel_of_head w_val w_out b alpha keys X q 0 j - conv offset W b X q 0 j|
  <= 2%:R * leak alpha D * data_factor kernel_of_head W keys X j).

(** The limit [alpha -> +oo]. *)
Check (@Theorem1.theorem1_limit :
  forall (R : realType) (D din dout dh nh : nat) (K : finType)
    (offset : K -> pos D) (kernel_of_head : 'I_nh -> K)
    (Hbij : bijective kernel_of_head)
    (W : K -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h))
    (keys : seq (pos D)) (X : image R D din) (q : pos D) (j : 'I_dout)
    (Hkeys : uniq keys)
    (Htarget : forall h, q + offset (kernel_of_head h) \in keys),
  (fun alpha => layer offset kernel_of_head w_val w_out b alpha keys X q 0 j)
    @ +oo --> conv offset W b X q 0 j).

(** Every query of a zero-padded image, the keys being the padded box. *)
Check (@Theorem1.theorem1_zero_pad :
  forall (R : realType) (D din dout dh nh : nat) (ks ds : 'I_D -> nat)
    (kernel_of_head : 'I_nh -> kidx ks) (Hbij : bijective kernel_of_head)
    (W : kidx ks -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h))
    (lo hi : pos D) (alpha : R) (X : image R D din) (q : pos D) (j : 'I_dout)
    (Halpha : 0 < alpha) (Hq : in_box lo hi q),
  `|layer (kernel_offset ks ds) kernel_of_head w_val w_out b alpha
       (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds)) (zero_pad lo hi X) q 0 j
    - conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j|
  <= 2%:R * leak alpha D
     * data_factor kernel_of_head W (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds))
         (zero_pad lo hi X) j).

Check (@Theorem1.theorem1_zero_pad_limit :
  forall (R : realType) (D din dout dh nh : nat) (ks ds : 'I_D -> nat)
    (kernel_of_head : 'I_nh -> kidx ks) (Hbij : bijective kernel_of_head)
    (W : kidx ks -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (w_val : 'I_nh -> 'M[R]_(din, dh)) (w_out : 'M[R]_(\sum_(h < nh) dh, dout))
    (HW : forall h, w_val h *m out_block w_out h = W (kernel_of_head h))
    (lo hi : pos D) (X : image R D din) (q : pos D) (j : 'I_dout)
    (Hq : in_box lo hi q),
  (fun alpha => layer (kernel_offset ks ds) kernel_of_head w_val w_out b alpha
                  (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds))
                  (zero_pad lo hi X) q 0 j)
    @ +oo --> conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j).

(** Theorem 1: [prod_a K_a] heads express every convolution of the kernel box
    with [d_head >= rank W_Delta]: the error bound for every [alpha > 0] and
    the limit, for every zero-padded image and every query of it. *)
Check (@Theorem1.theorem1 :
  forall (R : realType) (D din dout dh : nat) (ks ds : 'I_D -> nat)
    (W : kidx ks -> 'M[R]_(din, dout)) (b : 'rV[R]_dout)
    (Hrank : forall i, (\rank (W i) <= dh)%N),
  exists (w_val : 'I_#|kidx ks| -> 'M[R]_(din, dh))
         (w_out : 'M[R]_(\sum_(h < #|kidx ks|) dh, dout)),
  forall (lo hi : pos D) (X : image R D din) (q : pos D) (Hq : in_box lo hi q) (j : 'I_dout),
    (forall alpha : R, 0 < alpha ->
      `|layer (kernel_offset ks ds) enum_val w_val w_out b alpha
          (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds)) (zero_pad lo hi X) q 0 j
        - conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j|
      <= 2%:R * leak alpha D
         * data_factor enum_val W (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds))
             (zero_pad lo hi X) j)
    /\ (fun alpha => layer (kernel_offset ks ds) enum_val w_val w_out b alpha
                       (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds))
                       (zero_pad lo hi X) q 0 j)
         @ +oo --> conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j).

(** ** Theorem 1 is tight (an addition of the project): fewer heads than the
    rank of the kernel's unfolding U(W) cannot express the convolution *)

(** The lower bound's definitions: the rows of [U(W)] are the vectorised
    [W_Delta]; a shift matrix has a one where output [o] reads pixel [p]; a
    layer maps [X : 'M_(ni, di)] to [\sum_h A_h(X) X M_h + b'] (attention) or
    [\sum_Delta S_Delta X W_Delta + b] (convolution); the attention weights are
    continuous at [X = 0] along every line; a 1-D convolution's taps. *)
Check (fun (F : fieldType) (k m n : nat) (A : 'I_k -> 'M[F]_(m, n))
           (s no ni : nat) (tap : 'I_s -> 'I_no -> option 'I_ni) (d : 'I_s) =>
  (erefl : LowerBound.unfold_rows A = \matrix_(i, j) mxvec (A i) 0 j,
   erefl : LowerBound.shift_mx F tap d = \matrix_(o, p) (tap d o == Some p)%:R)).
Check (fun (R : realType) (nh s no ni di dout : nat)
           (Att : 'I_nh -> 'M[R]_(ni, di) -> 'M[R]_(no, ni)) (M : 'I_nh -> 'M[R]_(di, dout))
           (b' : 'M[R]_(no, dout)) (S : 'I_s -> 'M[R]_(no, ni)) (W : 'I_s -> 'M[R]_(di, dout))
           (b : 'M[R]_(no, dout)) (X : 'M[R]_(ni, di)) =>
  (erefl : LowerBound.mhsa Att M b' X = \sum_(h < nh) Att h X *m X *m M h + b',
   erefl : LowerBound.convolution S W b X = \sum_(d < s) S d *m X *m W d + b,
   erefl : LowerBound.continuous_at_zero Att =
     (forall h E o p, {for (0 : R), continuous (fun t : R => Att h (t *: E) o p)}))).
Check (fun (st dl lo s no ni : nat) (d : 'I_s) (o : 'I_no) =>
  erefl : LowerBound.conv_tap st dl lo ni d o =
    if (lo <= o * st + d * dl)%N then insub (o * st + d * dl - lo)%N else None).

(** Shift matrices whose taps read distinct pixels at each output, each tap used
    by some output, are linearly independent. *)
Check (@LowerBound.shift_mx_free :
  forall (F : fieldType) (s no ni : nat) (tap : 'I_s -> 'I_no -> option 'I_ni),
  (forall o (d d' : 'I_s) (p : 'I_ni), tap d o = Some p -> tap d' o = Some p -> d = d') ->
  (forall d, exists o, tap d o != None) ->
  row_free (LowerBound.unfold_rows (LowerBound.shift_mx F tap))).

(** Positional heads: [\sum_h P_h (x) M_h = \sum_d S_d (x) W_d] with independent
    [S_d] needs at least [\rank U(W)] heads. *)
Check (@LowerBound.heads_ge_rank :
  forall (F : fieldType) (nh s no ni di dout : nat)
    (P : 'I_nh -> 'M[F]_(no, ni)) (M : 'I_nh -> 'M[F]_(di, dout))
    (S : 'I_s -> 'M[F]_(no, ni)) (W : 'I_s -> 'M[F]_(di, dout)),
  row_free (LowerBound.unfold_rows S) ->
  (forall o p c c', \sum_(h < nh) P h o p * M h c c' = \sum_(d < s) S d o p * W d c c') ->
  (\rank (LowerBound.unfold_rows W) <= nh)%N).

(** Equal maps have equal derivatives at [X = 0]: the content terms drop out. *)
Check (@LowerBound.linearisation :
  forall (R : realType) (nh s no ni di dout : nat)
    (Att : 'I_nh -> 'M[R]_(ni, di) -> 'M[R]_(no, ni)) (M : 'I_nh -> 'M[R]_(di, dout))
    (b' : 'M[R]_(no, dout)) (S : 'I_s -> 'M[R]_(no, ni)) (W : 'I_s -> 'M[R]_(di, dout))
    (b : 'M[R]_(no, dout)),
  LowerBound.continuous_at_zero Att ->
  (forall X, LowerBound.mhsa Att M b' X = LowerBound.convolution S W b X) ->
  forall E, \sum_(h < nh) Att h 0 *m E *m M h = \sum_(d < s) S d *m E *m W d).

(** Any attention whose weights are continuous at [X = 0] and that equals the
    convolution for every input has at least [\rank U(W)] heads. *)
Check (@LowerBound.attention_needs_rank_heads :
  forall (R : realType) (nh s no ni di dout : nat)
    (Att : 'I_nh -> 'M[R]_(ni, di) -> 'M[R]_(no, ni)) (M : 'I_nh -> 'M[R]_(di, dout))
    (b' : 'M[R]_(no, dout)) (S : 'I_s -> 'M[R]_(no, ni)) (W : 'I_s -> 'M[R]_(di, dout))
    (b : 'M[R]_(no, dout)),
  row_free (LowerBound.unfold_rows S) -> LowerBound.continuous_at_zero Att ->
  (forall X, LowerBound.mhsa Att M b' X = LowerBound.convolution S W b X) ->
  (\rank (LowerBound.unfold_rows W) <= nh)%N).

(** The hypotheses hold for a 1-D convolution with stride, dilation and zero
    padding on an image on which every tap is used by some output. *)
Check (@LowerBound.conv1_attention_needs_rank_heads :
  forall (st dl lo s no ni : nat) (R : realType) (nh di dout : nat)
    (Att : 'I_nh -> 'M[R]_(ni, di) -> 'M[R]_(no, ni)) (M : 'I_nh -> 'M[R]_(di, dout))
    (b' : 'M[R]_(no, dout)) (W : 'I_s -> 'M[R]_(di, dout)) (b : 'M[R]_(no, dout)),
  (0 < dl)%N -> (forall d, exists o, LowerBound.conv_tap st dl lo ni d o != None) ->
  LowerBound.continuous_at_zero Att ->
  (forall X, LowerBound.mhsa Att M b' X
             = LowerBound.convolution (LowerBound.shift_mx R (LowerBound.conv_tap st dl lo ni)) W b X) ->
  (\rank (LowerBound.unfold_rows W) <= nh)%N).

(** ** At Coq's real numbers *)

Check (CoqReals.concentration_R :
  forall (D : nat) (alpha : Rdefinitions.R) (keys : seq (pos D)) (t : pos D)
    (Halpha : 0 < alpha) (Hkeys : uniq keys) (Ht : t \in keys),
  \sum_(k <- keys | k != t)
      softmax expR keys (fun k => - alpha * sqnorm (posR _ (k - t))) k
  <= leak alpha D).

Check (CoqReals.theorem1_R :
  forall (D din dout dh : nat) (ks ds : 'I_D -> nat)
    (W : kidx ks -> 'M[Rdefinitions.R]_(din, dout)) (b : 'rV[Rdefinitions.R]_dout)
    (Hrank : forall i, (\rank (W i) <= dh)%N),
  exists (w_val : 'I_#|kidx ks| -> 'M[Rdefinitions.R]_(din, dh))
         (w_out : 'M[Rdefinitions.R]_(\sum_(h < #|kidx ks|) dh, dout)),
  forall (lo hi : pos D) (X : image _ D din) (q : pos D) (Hq : in_box lo hi q) (j : 'I_dout),
    (forall alpha : Rdefinitions.R, 0 < alpha ->
      `|layer (kernel_offset ks ds) enum_val w_val w_out b alpha
          (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds)) (zero_pad lo hi X) q 0 j
        - conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j|
      <= 2%:R * leak alpha D
         * data_factor enum_val W (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds))
             (zero_pad lo hi X) j)
    /\ (fun alpha => layer (kernel_offset ks ds) enum_val w_val w_out b alpha
                       (box_enum (lo - pad_lo_row ks ds) (hi + pad_hi_row ks ds))
                       (zero_pad lo hi X) q 0 j)
         @ +oo --> conv (kernel_offset ks ds) W b (zero_pad lo hi X) q 0 j).
