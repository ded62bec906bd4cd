-- Competence areas move to the one storage rule (ADR 0028), as routing, the expert registry and
-- refunds store them: ekb_domain::CompetenceArea's code in TEXT with a CHECK constraint listing
-- the codes, instead of the contract's number. A case's 0 meant the employer chose its own
-- expert (no framework-agreement area) and is NULL now. A number outside the contract (or an
-- order's 0, which never had an agreement) is kept as its digits, which the CHECK refuses, so the
-- migration fails rather than guess. No index uses these columns.
-- PostgreSQL allows no subquery in ALTER … USING, so the agreements' array is converted with
-- nested array_replace over its text form.

ALTER TABLE cases
    ALTER COLUMN competence_area DROP NOT NULL,
    ALTER COLUMN competence_area TYPE TEXT USING CASE competence_area
            WHEN 0 THEN NULL
            WHEN 1 THEN 'WORKPLACE_RELATIONS'
            WHEN 2 THEN 'SICK_LEAVE_FOLLOW_UP'
            WHEN 3 THEN 'CONFLICT_HANDLING'
            WHEN 4 THEN 'RESTRUCTURING'
            WHEN 5 THEN 'WORK_CAPACITY_ASSESSMENT'
            WHEN 6 THEN 'CAREER_GUIDANCE'
            ELSE competence_area::TEXT
        END,
    ADD CONSTRAINT cases_competence_area_known CHECK (competence_area IN (
        'WORKPLACE_RELATIONS', 'SICK_LEAVE_FOLLOW_UP', 'CONFLICT_HANDLING', 'RESTRUCTURING',
        'WORK_CAPACITY_ASSESSMENT', 'CAREER_GUIDANCE'));

ALTER TABLE orders
    ALTER COLUMN competence_area TYPE TEXT USING CASE competence_area
            WHEN 1 THEN 'WORKPLACE_RELATIONS'
            WHEN 2 THEN 'SICK_LEAVE_FOLLOW_UP'
            WHEN 3 THEN 'CONFLICT_HANDLING'
            WHEN 4 THEN 'RESTRUCTURING'
            WHEN 5 THEN 'WORK_CAPACITY_ASSESSMENT'
            WHEN 6 THEN 'CAREER_GUIDANCE'
            ELSE competence_area::TEXT
        END,
    ADD CONSTRAINT orders_competence_area_known CHECK (competence_area IN (
        'WORKPLACE_RELATIONS', 'SICK_LEAVE_FOLLOW_UP', 'CONFLICT_HANDLING', 'RESTRUCTURING',
        'WORK_CAPACITY_ASSESSMENT', 'CAREER_GUIDANCE'));

ALTER TABLE agreements
    ALTER COLUMN competence_areas TYPE TEXT[] USING
        array_replace(array_replace(array_replace(array_replace(array_replace(array_replace(
            competence_areas::TEXT[],
            '1', 'WORKPLACE_RELATIONS'),
            '2', 'SICK_LEAVE_FOLLOW_UP'),
            '3', 'CONFLICT_HANDLING'),
            '4', 'RESTRUCTURING'),
            '5', 'WORK_CAPACITY_ASSESSMENT'),
            '6', 'CAREER_GUIDANCE'),
    ADD CONSTRAINT agreements_competence_areas_known CHECK (
        cardinality(competence_areas) > 0
        AND competence_areas <@ ARRAY[
            'WORKPLACE_RELATIONS', 'SICK_LEAVE_FOLLOW_UP', 'CONFLICT_HANDLING', 'RESTRUCTURING',
            'WORK_CAPACITY_ASSESSMENT', 'CAREER_GUIDANCE']::TEXT[]);
