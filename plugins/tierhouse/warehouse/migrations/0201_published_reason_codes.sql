-- Issue 13B: BI reads a reason code where staff decided a grade, never their words
-- (tierhouse.lifecycle.publish.STAFF_DECISIONS). Lists published before this migration carry the
-- reviewer's or the appeal answer's text in decided_by: replaced by the code here, while
-- history.tier_snapshots keeps the text for auditors (and every snapshot hash with it).
update published.customer_tiers
set decided_by = case when decided_by like 'review by %' then 'art8_review' else 'art9_appeal' end
where decided_by like 'review by %' or decided_by like 'appeal answered by %';

comment on column published.customer_tiers.decided_by is
    'Why the customer has the tier: the rule (dbt, quarterly re-grade) or, where staff decided, the reason code (art8_review, art9_appeal); their words are in history.tier_snapshots.';
